"""The run page's DAG, laid out in Python and drawn as inline SVG.

Layout (a small Sugiyama): each step's layer is the length of the longest dependency path
that reaches it; within a layer, steps are ordered to reduce edge crossings by a few sweeps of
the barycenter heuristic (down, then up), ties broken by definition order. The result depends
only on the steps and their dependencies, so a golden test can pin it. Every step of the
definition is drawn, including those that have not started.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

NODE_WIDTH = 168
NODE_HEIGHT = 44
LAYER_GAP = 72  # horizontal room between two layers, for the edges
ROW_GAP = 18
MARGIN = 12
SWEEPS = 4


@dataclass(frozen=True)
class Node:
    step_id: str
    layer: int
    row: int
    x: int
    y: int


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    path: str  # the SVG path data


@dataclass(frozen=True)
class Layout:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    width: int
    height: int


def layers_of(steps: Sequence[tuple[str, Sequence[str]]]) -> dict[str, int]:
    """Each step's layer: 0 for a root, else one more than its deepest dependency.

    ``steps`` are ``(step_id, depends_on)`` in definition order; dependencies on unknown
    steps are ignored (a validated definition has none). Iterative, so a 2,000-step chain
    does not recurse 2,000 deep; a cycle (impossible after validation) puts its steps at 0.
    """
    deps = {sid: [d for d in ds if d != sid] for sid, ds in steps}
    layer: dict[str, int] = {}
    for root, _ in steps:
        stack = [(root, False)]
        visiting: set[str] = set()
        while stack:
            sid, expanded = stack.pop()
            if sid in layer:
                continue
            if expanded:
                visiting.discard(sid)
                known = [layer[d] for d in deps.get(sid, ()) if d in layer]
                layer[sid] = max(known, default=-1) + 1
                continue
            if sid in visiting:
                continue  # a cycle: leave it to the fallback below
            visiting.add(sid)
            stack.append((sid, True))
            stack.extend((d, False) for d in deps.get(sid, ()) if d in deps and d not in layer)
    return layer


def layout(steps: Sequence[tuple[str, Sequence[str]]]) -> Layout:
    """Positions for every step and a path for every dependency edge (left to right)."""
    layer = layers_of(steps)
    position = {sid: i for i, (sid, _) in enumerate(steps)}
    deps = {sid: [d for d in ds if d in layer and d != sid] for sid, ds in steps}
    dependents: dict[str, list[str]] = {sid: [] for sid, _ in steps}
    for sid, ds in deps.items():
        for d in ds:
            dependents[d].append(sid)
    count = max(layer.values(), default=-1) + 1
    rows: list[list[str]] = [[] for _ in range(count)]
    for sid, _ in steps:
        rows[layer[sid]].append(sid)
    for sweep in range(SWEEPS):
        downward = sweep % 2 == 0
        order = range(1, count) if downward else range(count - 2, -1, -1)
        for i in order:
            index = {sid: r for r, sid in enumerate(rows[i - 1 if downward else i + 1])}
            neighbours = deps if downward else dependents
            rows[i] = sorted(
                rows[i], key=lambda s: (_barycenter(s, neighbours, index), position[s])
            )
    tallest = max((len(r) for r in rows), default=0)
    height = MARGIN * 2 + max(tallest, 1) * (NODE_HEIGHT + ROW_GAP) - ROW_GAP
    nodes: dict[str, Node] = {}
    for i, row in enumerate(rows):
        offset = (tallest - len(row)) * (NODE_HEIGHT + ROW_GAP) // 2  # centre short layers
        for r, sid in enumerate(row):
            x = MARGIN + i * (NODE_WIDTH + LAYER_GAP)
            y = MARGIN + offset + r * (NODE_HEIGHT + ROW_GAP)
            nodes[sid] = Node(sid, i, r, x, y)
    edges = [Edge(d, sid, _edge_path(nodes[d], nodes[sid])) for sid, _ in steps for d in deps[sid]]
    width = MARGIN * 2 + max(count, 1) * (NODE_WIDTH + LAYER_GAP) - LAYER_GAP
    ordered = tuple(nodes[sid] for sid, _ in steps)
    return Layout(ordered, tuple(edges), width, height)


def _barycenter(sid: str, neighbours: Mapping[str, list[str]], index: Mapping[str, int]) -> float:
    """The mean row of ``sid``'s neighbours in the adjacent layer (its own row if none)."""
    rows = [index[n] for n in neighbours.get(sid, ()) if n in index]
    return sum(rows) / len(rows) if rows else float("inf")


def _edge_path(a: Node, b: Node) -> str:
    x1, y1 = a.x + NODE_WIDTH, a.y + NODE_HEIGHT // 2
    x2, y2 = b.x, b.y + NODE_HEIGHT // 2
    bend = (x2 - x1) // 2
    return f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}"


def label(text: str, limit: int = 20) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis (the full id is in the title)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def svg(drawing: Layout, statuses: Mapping[str, str], *, link: str = "#step-") -> str:
    """The layout as an inline ``<svg>``: one ``<g class="node">`` per step carrying
    ``data-step`` and ``data-status``, coloured by status (CSS) and labelled with the status
    in text, so that colour is not the only signal."""
    parts = [
        f'<svg class="dag" role="img" aria-label="steps of the run" '
        f'viewBox="0 0 {drawing.width} {drawing.height}" width="{drawing.width}" '
        f'height="{drawing.height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for e in drawing.edges:
        parts.append(
            f'<path class="edge" data-from="{escape(e.source)}" data-to="{escape(e.target)}" '
            f'd="{e.path}"/>'
        )
    for n in drawing.nodes:
        status = statuses.get(n.step_id, "pending")
        sid = escape(n.step_id)
        parts.append(
            f'<a href="{link}{sid}"><g class="node" data-step="{sid}" '
            f'data-status="{escape(status)}" transform="translate({n.x},{n.y})">'
            f"<title>{sid}: {escape(status)}</title>"
            f'<rect width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="6"/>'
            f'<text class="name" x="10" y="18">{escape(label(n.step_id))}</text>'
            f'<text class="status" x="10" y="35">{escape(status)}</text></g></a>'
        )
    parts.append("</svg>")
    return "".join(parts)
