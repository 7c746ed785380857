"""The JSON shapes the CLI prints that the API does not have."""

from __future__ import annotations

from typing import Any

from podium.service.views import EventView, RunSummary, RunTreeNode, RunView, StepDetail, View


class RunReport(View):
    """``podium runs show --json``: the run detail with each step's attempts (and the
    event log with ``--events``)."""

    run: RunView
    steps: list[StepDetail]
    approvals: list[dict[str, Any]]
    parent: RunSummary | None = None
    children: list[RunSummary]
    events: list[EventView] | None = None
    # the run and its descendants when it has children (issue 11)
    tree: list[RunTreeNode] | None = None
