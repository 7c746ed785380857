"""Tables stay readable at 80 and 60 columns: the note gives way first, ids shorten to a
unique prefix, and status and step names are never cut."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console
from rich.table import Table

from podium.cli.progress import steps_table
from podium.cli.runs import runs_table
from podium.cli.widths import unique_prefixes
from podium.service.views import RunSummary, StepView

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
RUN_IDS = [
    "01a23397-363b-7c8b-bd35-b134d56a3d76",
    "01a23397-3aaa-7c8b-bd35-b134d56a3d77",
    "01a23396-e62e-7bad-8e22-fc9db7b8a5bb",
]


def rendered(table: Table, width: int) -> list[str]:
    console = Console(width=width, record=True, color_system=None, force_terminal=False)
    console.print(table)
    return [line.rstrip() for line in console.export_text().splitlines()]


def run(run_id: str, status: str) -> RunSummary:
    return RunSummary(
        id=run_id,
        organizationSlug="default",
        definition="quarterly-report-with-a-long-name",
        version="12.0.3",
        status=status,
        createdAt=NOW - timedelta(minutes=5),
        startedAt=NOW - timedelta(minutes=5),
        endedAt=NOW,
        updatedAt=NOW,
    )


def step(step_id: str, status: str, error: str | None = None) -> StepView:
    return StepView(
        stepRecordId=f"rec-{step_id}",
        runId=RUN_IDS[0],
        stepId=step_id,
        position=0,
        type="agent",
        agent="translator-for-long-documents",
        status=status,
        attempt=2,
        generation=1,
        recoveries=0,
        error={"code": "agent_error", "message": error} if error else None,
        startedAt=NOW - timedelta(seconds=3),
        endedAt=NOW,
        metadata={},
    )


def test_unique_prefixes_are_as_short_as_distinctness_allows() -> None:
    assert unique_prefixes(RUN_IDS) == ["01a23397-36", "01a23397-3a", "01a23396-e6"]
    assert unique_prefixes(["abcdefghij", "zzzzzzzzzz"]) == ["abcdefgh", "zzzzzzzz"]


@pytest.mark.parametrize("width", [60, 80])
def test_runs_list_fits_and_keeps_statuses_and_unique_ids(width: int) -> None:
    statuses = ["completed", "running", "cancelled"]
    runs = [run(i, s) for i, s in zip(RUN_IDS, statuses, strict=True)]
    lines = rendered(runs_table(runs, NOW, width), width)
    assert all(len(line) <= width for line in lines)
    rows = [line.split() for line in lines[1:]]
    assert [r[0] for r in rows] == ["01a23397-36", "01a23397-3a", "01a23396-e6"]
    assert [r[2] for r in rows] == statuses


def test_runs_list_shows_whole_ids_when_there_is_room() -> None:
    lines = rendered(runs_table([run(RUN_IDS[0], "completed")], NOW, 160), 160)
    assert lines[1].split()[:3] == [
        RUN_IDS[0],
        "quarterly-report-with-a-long-name@12.0.3",
        "completed",
    ]


@pytest.mark.parametrize("width", [60, 80])
def test_steps_table_gives_the_note_away_first(width: int) -> None:
    steps = [
        step("fetch-all-the-quarterly-documents", "failed", "the agent said no " * 5),
        step("summarize", "retry_scheduled"),
    ]
    lines = rendered(steps_table(steps, None, NOW, width), width)
    assert all(len(line) <= width for line in lines)
    first, second = (line.split() for line in lines[1:3])
    assert first[0] == "fetch-all-the-quarterly-documents"
    assert "failed" in first
    assert second[0] == "summarize"
    assert "retry_scheduled" in second


def test_at_80_columns_the_note_keeps_the_room_left() -> None:
    lines = rendered(steps_table([step("fetch", "failed", "no " * 40)], None, NOW, 80), 80)
    assert all(len(line) <= 80 for line in lines)
    assert lines[1].split()[:3] == ["fetch", "translator-for-long-documents", "failed"]
    assert "agent_error: no" in lines[1]
    assert len(lines[1]) >= 78  # every column left goes to the note
    assert lines[1].endswith("…")


def test_steps_table_keeps_everything_when_wide() -> None:
    lines = rendered(steps_table([step("a", "failed", "boom")], None, NOW, 160), 160)
    assert lines[1].split() == [
        "a",
        "translator-for-long-documents",
        "failed",
        "2",
        "3.00",
        "s",
        "agent_error:",
        "boom",
    ]
