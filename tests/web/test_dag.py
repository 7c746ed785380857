"""The run page's DAG layout: deterministic layers and order, every step drawn."""

from __future__ import annotations

import re

from podium.web import dag

DIAMOND = [("a", []), ("b", ["a"]), ("c", ["a"]), ("d", ["b", "c"])]


def test_layers_are_the_longest_dependency_path() -> None:
    steps = [*DIAMOND, ("e", ["a", "d"]), ("lonely", [])]
    assert dag.layers_of(steps) == {"a": 0, "b": 1, "c": 1, "d": 2, "e": 3, "lonely": 0}


def test_a_diamond_is_laid_out_the_same_every_time_golden() -> None:
    drawing = dag.layout(DIAMOND)
    assert [(n.step_id, n.layer, n.row, n.x, n.y) for n in drawing.nodes] == [
        ("a", 0, 0, 12, 43),
        ("b", 1, 0, 252, 12),
        ("c", 1, 1, 252, 74),
        ("d", 2, 0, 492, 43),
    ]
    assert [(e.source, e.target) for e in drawing.edges] == [
        ("a", "b"),
        ("a", "c"),
        ("b", "d"),
        ("c", "d"),
    ]
    assert (drawing.width, drawing.height) == (672, 130)
    assert drawing == dag.layout(DIAMOND)


def test_ordering_removes_a_crossing_that_definition_order_would_draw() -> None:
    # x1 feeds y2 and x2 feeds y1: in definition order the two edges cross
    steps = [("x1", []), ("x2", []), ("y1", ["x2"]), ("y2", ["x1"])]
    rows = {n.step_id: n.row for n in dag.layout(steps).nodes}
    assert rows["y2"] < rows["y1"]
    assert _crossings(steps) == 0


def test_a_wide_and_deep_dag_lays_out_without_recursion_and_draws_every_step() -> None:
    chain = [(f"s{i}", [f"s{i - 1}"] if i else []) for i in range(2000)]
    assert dag.layers_of(chain)["s1999"] == 1999
    fan = [("root", []), *((f"p{i}", ["root"]) for i in range(500)), ("join", ["p0", "p499"])]
    svg = dag.svg(dag.layout(fan), {"root": "completed", "p3": "running"})
    assert svg.count('class="node"') == 502
    assert 'data-step="p3" data-status="running"' in svg
    assert 'data-step="p4" data-status="pending"' in svg  # not started: still drawn


def test_nodes_carry_their_status_in_text_and_escape_ids() -> None:
    svg = dag.svg(dag.layout([("a<b", [])]), {"a<b": "failed"})
    assert "a&lt;b" in svg
    assert "a<b" not in svg
    assert re.search(r'<text class="status"[^>]*>failed</text>', svg)


def _crossings(steps: list[tuple[str, list[str]]]) -> int:
    drawing = dag.layout(steps)
    y = {n.step_id: n.y for n in drawing.nodes}
    edges = [(y[e.source], y[e.target]) for e in drawing.edges]
    return sum(
        1
        for i, (a1, b1) in enumerate(edges)
        for a2, b2 in edges[i + 1 :]
        if (a1 - a2) * (b1 - b2) < 0
    )
