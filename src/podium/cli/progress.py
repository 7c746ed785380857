"""Following a run until it ends: a live table on a terminal, one line per event otherwise.

Progress comes from the database alone (``steps_of`` and ``events_after`` polled about every
100 ms), so following works the same whether this process or another one does the work.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from podium.cli import render
from podium.domain.definition import Definition
from podium.storage.records import EventRecord, RunRecord, StepRecord
from podium.storage.store import SqlStore

POLL_SECONDS = 0.1


class Mode(Enum):
    LIVE = "live"  # a table redrawn in place (terminal)
    LINES = "lines"  # one line per event (pipes, CI logs)
    QUIET = "quiet"  # nothing until the end (--json)


@dataclass(frozen=True)
class RunView:
    """What one poll saw of a run."""

    run: RunRecord
    steps: list[StepRecord]


def poll(store: SqlStore, run_id: str, after: int) -> tuple[RunView, list[EventRecord]]:
    """The run, its steps and its events after ``after`` (events read first, so a terminal
    run seen here has all its events at or before ``run.last_sequence``)."""
    events = store.events_after(run_id, after)
    run = store.get_run(run_id)
    return RunView(run, store.steps_of(run_id)), events


def _done(steps: list[StepRecord]) -> int:
    return sum(1 for s in steps if s.status in ("completed", "skipped"))


class RunDisplay:
    """The live renderable: a header and one row per step, re-rendered on every refresh so
    that elapsed times keep moving between polls."""

    def __init__(self, run_id: str, definition: Definition | None = None) -> None:
        self.run_id = run_id
        self.definition = definition
        self.view: RunView | None = None

    def __rich__(self) -> RenderableType:
        view = self.view
        if view is None:
            return Text(f"run {self.run_id}: waiting for the first update…", style="dim")
        return render_run(view, self.definition, render.now_utc())


def render_run(view: RunView, definition: Definition | None, now: datetime) -> RenderableType:
    """Header (run id, definition@version, status, progress, elapsed) and the steps table."""
    run, steps = view.run, view.steps
    header = Table.grid(padding=(0, 2))
    for _ in range(5):
        header.add_column()
    done = _done(steps)
    header.add_row(
        Text(f"run {run.id}", style="bold"),
        Text(render.run_label(run)),
        render.status_text(run.status),
        ProgressBar(total=max(len(steps), 1), completed=done, width=24),
        Text(f"{done}/{len(steps)} steps  {render.format_duration(render.run_duration(run, now))}"),
    )
    return Group(header, steps_table(steps, definition, now))


def steps_table(steps: list[StepRecord], definition: Definition | None, now: datetime) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("step", no_wrap=True)
    table.add_column("agent", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("attempt", justify="right", no_wrap=True)
    table.add_column("elapsed", justify="right", no_wrap=True)
    table.add_column("note", overflow="ellipsis", no_wrap=True, max_width=80)
    for step in steps:
        table.add_row(
            step.step_id,
            step.agent or step.type,
            render.status_text(step.status),
            render.attempt_text(step, definition),
            render.format_duration(render.step_elapsed(step, now)),
            Text(render.step_note(step, now), style="red" if step.status == "failed" else ""),
        )
    return table


async def follow(
    store: SqlStore,
    run_id: str,
    console: Console,
    *,
    mode: Mode,
    stop: asyncio.Event,
    definition: Definition | None = None,
    interval: float = POLL_SECONDS,
) -> RunView | None:
    """Show the run's progress until it is terminal (returns the final view) or until
    ``stop`` is set (returns None). Every event is shown once, in sequence order."""
    after = 0
    display = RunDisplay(run_id, definition)
    live = (
        Live(display, console=console, refresh_per_second=10, redirect_stderr=False)
        if mode is Mode.LIVE
        else None
    )
    with live if live is not None else contextlib.nullcontext():
        while True:
            view, events = await asyncio.to_thread(poll, store, run_id, after)
            if events:
                after = events[-1].sequence
            if mode is Mode.LINES:
                for event in events:
                    render.plain(console, render.event_line(event))
            display.view = view
            if view.run.status in render.RUN_TERMINAL and after >= view.run.last_sequence:
                if live is not None:
                    live.refresh()
                return view
            if stop.is_set():
                if live is not None:
                    live.refresh()
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
