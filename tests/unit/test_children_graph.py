"""The graph of definitions that launch each other (issue 11): cycles, depth, ranges."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from podium.domain.children import child_graph_issues, range_issue, version_matches
from podium.domain.definition import Definition, parse_definition


def d(name: str, *targets: str, version: str = "1.0.0") -> Definition:
    steps = "\n".join(
        f"    - {{id: s{i}, type: orchestration, orchestration: {{name: {t}, version: '^1'}}}}"
        for i, t in enumerate(targets)
    )
    return parse_definition(
        f"metadata: {{name: {name}, version: {version}}}\norchestration:\n  steps:\n"
        + (steps or "    - {id: x, agent: echo}")
        + "\n"
    )


def lookup(*defs: Definition) -> Callable[[str], list[Definition]]:
    by_name: dict[str, list[Definition]] = {}
    for x in defs:
        by_name.setdefault(x.metadata.name, []).append(x)
    return lambda name: by_name.get(name, [])


@pytest.mark.parametrize(
    ("version", "spec", "matches"),
    [
        ("1.4.0", "^1", True),
        ("2.0.0", "^1", False),
        ("1.2.9", "~1.2", True),
        ("1.3.0", "~1.2", False),
        ("1.9.9", ">=1.0 <2", True),
        ("1.2.0", "1.2.0", True),
        ("1.2.1", "1.2.0", False),
        ("3.0.0", None, True),
        ("1.0.0", "not a range", False),
    ],
)
def test_version_ranges(version: str, spec: str | None, matches: bool) -> None:
    assert version_matches(version, spec) is matches


def test_an_unreadable_range_is_an_issue_at_its_path() -> None:
    issue = range_issue("^^1", "orchestration.steps[0].orchestration.version")
    assert issue is not None
    assert issue.path.endswith(".version")
    assert range_issue("~1.2", "x") is None


def test_a_cycle_through_stored_definitions_is_named_from_the_root() -> None:
    issues = child_graph_issues(d("a", "x", "b"), lookup(d("b", "c"), d("c", "a")))
    assert [(i.path, i.message) for i in issues] == [
        (
            "orchestration.steps[1].orchestration",
            "child orchestrations form a cycle: a -> b -> c -> a",
        )
    ]


def test_a_cycle_only_through_a_version_outside_the_range_is_no_cycle() -> None:
    # b 2.0.0 would launch a again, but the root asks for ^1
    assert child_graph_issues(d("a", "b"), lookup(d("b"), d("b", "a", version="2.0.0"))) == []


def test_a_diamond_is_not_a_cycle() -> None:
    assert child_graph_issues(d("a", "b", "c"), lookup(d("b", "z"), d("c", "z"), d("z"))) == []


def test_depth_up_to_the_limit_is_allowed_and_one_more_is_refused() -> None:
    chain = [d(f"n{i}", f"n{i + 1}") for i in range(1, 8)] + [d("n8")]
    assert child_graph_issues(d("n0", "n1"), lookup(*chain), max_depth=8) == []
    [issue] = child_graph_issues(d("n0", "n1"), lookup(*chain), max_depth=7)
    assert "deeper than 7 levels" in issue.message
    assert "n0 -> n1 -> n2 -> n3 -> n4 -> n5 -> n6 -> n7 -> n8" in issue.message


def test_missing_targets_are_left_to_run_time() -> None:
    assert child_graph_issues(d("a", "nowhere"), lookup()) == []
