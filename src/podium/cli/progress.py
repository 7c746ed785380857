"""Following a run until it ends: a live table on a terminal, one line per event otherwise.

Events come from the backend's ``follow_events`` (the SSE stream of a server, or the local
database polled about every 100 ms); the live table is redrawn from the run detail after
events arrived. Following works the same whether this process or another one does the work.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from enum import Enum

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from podium.cli import render, widths
from podium.cli.tree import has_active_children, tree_table
from podium.client.backend import Backend
from podium.domain.definition import Definition
from podium.service.views import RunDetail, RunTreeNode, StepView

REDRAW_SECONDS = 0.1
CHILD_REFRESH_SECONDS = 0.5


class Mode(Enum):
    LIVE = "live"  # a table redrawn in place (terminal)
    LINES = "lines"  # one line per event (pipes, CI logs)
    QUIET = "quiet"  # nothing until the end (--json)


def mode_for(json_output: bool) -> Mode:
    if json_output:
        return Mode.QUIET
    return Mode.LIVE if render.out().is_terminal else Mode.LINES


def _done(steps: list[StepView]) -> int:
    return sum(1 for s in steps if s.status in ("completed", "skipped"))


class RunDisplay:
    """The live renderable: a header and one row per step, re-rendered on every refresh so
    that elapsed times keep moving between updates."""

    def __init__(self, run_id: str, definition: Definition | None = None) -> None:
        self.run_id = run_id
        self.definition = definition
        self.detail: RunDetail | None = None
        # the last progress message of each step record, from its progress events
        self.progress: dict[str, str] = {}
        self.tree: list[RunTreeNode] | None = None  # issue 11: children's progress

    def __rich__(self) -> RenderableType:
        if self.detail is None:
            return Text(f"run {self.run_id}: waiting for the first update…", style="dim")
        now = render.now_utc()
        shown = render_run(self.detail, self.definition, now, self.progress)
        if not self.tree or len(self.tree) < 2:
            return shown
        return Group(shown, Text(""), tree_table(self.tree, now, limit=30))


def render_run(
    detail: RunDetail,
    definition: Definition | None,
    now: datetime,
    progress: dict[str, str] | None = None,
) -> RenderableType:
    """Header (run id, definition@version, status, progress, elapsed) and the steps table."""
    run, steps = detail.run, detail.steps
    narrow = render.out().width < 110
    header = Table.grid(padding=(0, 2))
    for _ in range(5):
        header.add_column()
    done = _done(steps)
    header.add_row(
        Text(f"run {run.id[:13] if narrow else run.id}", style="bold"),
        Text(render.run_label(run), overflow="ellipsis"),
        render.status_text(run.status),
        ProgressBar(total=max(len(steps), 1), completed=done, width=10 if narrow else 24),
        Text(f"{done}/{len(steps)} steps  {render.format_duration(render.run_duration(run, now))}"),
    )
    # human checkpoints: what the run waits for, and the command that decides it
    waiting = [Text(render.approval_line(a), style="magenta") for a in detail.approvals]
    return Group(
        header,
        steps_table(steps, definition, now, run_status=run.status, progress=progress),
        *waiting,
    )


def steps_table(
    steps: list[StepView],
    definition: Definition | None,
    now: datetime,
    width: int | None = None,
    *,
    run_status: str | None = None,
    progress: dict[str, str] | None = None,
) -> Table:
    """One row per step, fitted to ``width`` (the terminal's by default): the note column
    gives way first, then the agent; step names and statuses are never cut."""
    width = render.out().width if width is None else width
    rows = [
        (
            step.stepId,
            step.agent or step.type,
            step.status,
            render.attempt_text(step, definition),
            render.format_duration(render.step_elapsed(step, now)),
            render.step_note(
                step,
                now,
                run_status=run_status,
                progress=(progress or {}).get(step.stepRecordId),
            ),
        )
        for step in steps
    ]
    names = ("step", "agent", "status", "attempt", "elapsed", "note")
    needed = [widths.column_width(n, [r[i] for r in rows]) for i, n in enumerate(names)]
    fixed = [needed[0], needed[2], needed[3], needed[4]]
    agent = min(needed[1], max(5, widths.left_for(width, fixed)))
    note = widths.left_for(width, [*fixed, agent])
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("step", no_wrap=True, min_width=needed[0])
    table.add_column("agent", no_wrap=True, overflow="ellipsis", max_width=agent)
    table.add_column("status", no_wrap=True, min_width=needed[2])
    table.add_column("attempt", justify="right", no_wrap=True, min_width=needed[3])
    table.add_column("elapsed", justify="right", no_wrap=True, min_width=needed[4])
    show_note = note >= len("note")
    if show_note:
        table.add_column("note", overflow="ellipsis", no_wrap=True, max_width=min(note, 80))
    for step, (step_id, agent_name, status, attempt, elapsed, text) in zip(
        steps, rows, strict=True
    ):
        cells: list[Text | str] = [
            step_id,
            agent_name,
            render.status_text(status),
            attempt,
            elapsed,
        ]
        if show_note:
            cells.append(Text(text, style="red" if step.status == "failed" else ""))
        table.add_row(*cells)
    return table


class Follower:
    """Shows one run's events (or its live table) until the run ends."""

    def __init__(
        self, backend: Backend, run_id: str, console: Console, mode: Mode, display: RunDisplay
    ) -> None:
        self.backend = backend
        self.run_id = run_id
        self.console = console
        self.mode = mode
        self.display = display
        self._dirty = asyncio.Event()
        self._dirty.set()  # draw the run at once, before its first event arrives
        self._finished = False

    async def events(self) -> None:
        async for event in self.backend.follow_events(self.run_id):
            if self.mode is Mode.LINES:
                render.plain(self.console, render.event_line(event))
            if event.type == "orchestration.step.progress" and event.stepRecordId:
                self.display.progress[event.stepRecordId] = str(event.data.get("message") or "")
            self._dirty.set()

    async def redraw(self) -> None:
        """Fetch the detail after events arrived, at most every 100 ms; a fetch is never
        cancelled half-way, so the backend is used by one thread at a time."""
        while True:
            await self._dirty.wait()
            if self._finished:
                return
            self._dirty.clear()
            self.display.detail = await asyncio.to_thread(self.backend.detail, self.run_id)
            await self._redraw_children()
            await asyncio.sleep(REDRAW_SECONDS)

    async def _redraw_children(self) -> None:
        """Issue 11: a parent's stream carries only its own events, so while children are
        active their progress is fetched again every CHILD_REFRESH_SECONDS."""
        detail = self.display.detail
        if detail is None or not detail.children:
            return
        self.display.tree = await asyncio.to_thread(self.backend.tree, self.run_id)
        if has_active_children(self.display.tree):
            loop = asyncio.get_running_loop()
            loop.call_later(CHILD_REFRESH_SECONDS, self._dirty.set)

    async def stop_redrawing(self, task: asyncio.Task[None] | None) -> None:
        if task is not None:
            self._finished = True
            self._dirty.set()
            await task


async def follow(
    backend: Backend,
    run_id: str,
    console: Console,
    *,
    mode: Mode,
    stop: asyncio.Event,
    definition: Definition | None = None,
) -> RunDetail | None:
    """Show the run's progress until it is terminal (returns its final detail) or until
    ``stop`` is set (returns None). Every event is shown once, in sequence order."""
    display = RunDisplay(run_id, definition)
    follower = Follower(backend, run_id, console, mode, display)
    live = (
        Live(display, console=console, refresh_per_second=10, redirect_stderr=False)
        if mode is Mode.LIVE
        else None
    )
    with live if live is not None else contextlib.nullcontext():
        redrawer = asyncio.create_task(follower.redraw()) if live is not None else None
        events = asyncio.create_task(follower.events())
        stopped = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({events, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (events, stopped):
                task.cancel()
            await asyncio.gather(events, stopped, return_exceptions=True)
            await follower.stop_redrawing(redrawer)
        if not events.cancelled() and events.exception() is None:
            display.detail = await asyncio.to_thread(backend.detail, run_id)
            if display.detail.children:
                display.tree = await asyncio.to_thread(backend.tree, run_id)
        if live is not None:
            live.refresh()
    if events.cancelled():
        return None
    exc = events.exception()
    if exc is not None:
        raise exc
    return display.detail
