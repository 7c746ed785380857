"""The tree of runs (issue 11): a parent, its children, grandchildren, ... as a table.

Used by ``podium runs show`` and by the live view of a run that has children.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rich.table import Table
from rich.text import Text

from podium.cli import render
from podium.service.views import RunTreeNode

ACTIVE = ("planning", "running", "checkpoint")


def duration(node: RunTreeNode, now: datetime) -> float | None:
    start = node.startedAt or node.createdAt
    return render.between(start, node.endedAt or (now if node.status in ACTIVE else None))


def tree_table(nodes: Sequence[RunTreeNode], now: datetime, *, limit: int = 200) -> Table:
    """One row per run, indented by depth, with its status, steps done and duration.
    Past ``limit`` rows the rest are summed up in one line."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("run", no_wrap=True)
    table.add_column("definition", no_wrap=True, overflow="ellipsis", max_width=24)
    table.add_column("step", no_wrap=True, overflow="ellipsis", max_width=14)
    table.add_column("status", no_wrap=True)
    table.add_column("steps", justify="right", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    for node in nodes[:limit]:
        branch = "  " * max(node.depth - 1, 0) + ("└ " if node.depth else "")
        table.add_row(
            f"{branch}{node.id}",
            f"{node.definition}@{node.version}",
            node.parentStepId or "",
            render.status_text(node.status),
            f"{node.stepsDone}/{node.stepsTotal}",
            render.format_duration(duration(node, now)),
        )
    if len(nodes) > limit:
        rest = nodes[limit:]
        active = sum(1 for n in rest if n.status in ACTIVE)
        table.add_row(Text(f"… {len(rest)} more runs ({active} active)", style="dim"))
    return table


def has_active_children(nodes: Sequence[RunTreeNode]) -> bool:
    return any(n.depth > 0 and n.status in ACTIVE for n in nodes)
