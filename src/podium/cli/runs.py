"""``podium runs list|show|watch``: what runs there are, how they went, how they go."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from podium.cli import render, widths
from podium.cli.options import JsonOutput
from podium.cli.place import Place, with_place
from podium.domain.statuses import RunStatus

if TYPE_CHECKING:  # the rest is imported by the commands that use it (fast --help)
    from podium.cli.reports import RunReport
    from podium.client.backend import Backend
    from podium.domain.definition import Definition
    from podium.service.views import RunDetail, RunSummary, RunView, StepDetail

app = typer.Typer(help="List, inspect and watch runs.", no_args_is_help=True)

RunId = Annotated[
    str, typer.Argument(metavar="RUN", help="Run id, or a unique prefix of 8+ characters.")
]


class Lifecycle(StrEnum):
    active = "active"
    completed = "completed"
    all = "all"


def _statuses(values: list[str]) -> list[str]:
    known = [str(s) for s in RunStatus]
    for value in values:
        if value not in known:
            raise typer.BadParameter(
                f"unknown run status {value!r}; one of {', '.join(known)}",
                param_hint="'--status'",
            )
    return values


@app.command("list")
@with_place()
def list_command(
    status: Annotated[
        list[str] | None,
        typer.Option("--status", "-s", help="Only runs in this status (repeatable)."),
    ] = None,
    lifecycle: Annotated[
        Lifecycle,
        typer.Option("--lifecycle", help="active (not ended), completed (ended) or all."),
    ] = Lifecycle.all,
    definition: Annotated[
        str | None, typer.Option("--definition", "-d", help="Only runs of this definition.")
    ] = None,
    search: Annotated[
        str | None, typer.Option("--search", help="Only runs whose id or definition has this.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=200)] = 20,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="Continue a listing (its nextCursor).")
    ] = None,
    json_output: JsonOutput = False,
    *,
    place: Place,
) -> None:
    """Runs, newest first."""
    from podium.client.backend import RunFilter

    filters = RunFilter(
        status=_statuses(status or []),
        lifecycle=lifecycle.value,
        definition=definition,
        search=search,
        cursor=cursor,
        limit=limit,
    )
    with place.backend() as backend:
        page = backend.list_runs(filters)
    if json_output:
        render.write_json(page)
        return
    out = render.out()
    if not page.items:
        render.plain(out, "no runs")
        return
    out.print(runs_table(page.items, render.now_utc(), out.width))
    if page.nextCursor:
        render.plain(out, f"more: podium runs list --cursor {page.nextCursor}")


def runs_table(runs: Sequence[RunSummary], now: datetime, width: int) -> Table:
    """One row per run, fitted to ``width``: the definition gives way first, then ids shorten
    to a unique prefix; statuses are never cut."""
    rows = [
        [
            run.id,
            render.run_label(run),
            run.status,
            render.format_datetime(run.createdAt),
            render.format_duration(render.run_duration(run, now)),
        ]
        for run in runs
    ]
    names = ("id", "definition", "status", "created", "duration")

    def needed(i: int) -> int:
        return widths.column_width(names[i], [r[i] for r in rows])

    if widths.left_for(width, [needed(i) for i in (0, 2, 3, 4)]) < needed(1):
        for row, short in zip(rows, widths.unique_prefixes([r[0] for r in rows]), strict=True):
            row[0] = short
    room = widths.left_for(width, [needed(i) for i in (0, 2, 3, 4)])
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("id", no_wrap=True, min_width=needed(0))
    table.add_column("definition", no_wrap=True, overflow="ellipsis", max_width=max(room, 8))
    table.add_column("status", no_wrap=True, min_width=needed(2))
    table.add_column("created", no_wrap=True)
    table.add_column("duration", no_wrap=True, justify="right")
    for run_id, label, status, created, duration in rows:
        table.add_row(run_id, label, render.status_text(status), created, duration)
    return table


def report(backend: Backend, run_id: str, *, events: bool) -> RunReport:
    """The detail of a run with every step's attempts (and its events)."""
    from podium.cli.reports import RunReport

    detail = backend.detail(run_id)
    run_id = detail.run.id
    return RunReport(
        run=detail.run,
        steps=[backend.step(run_id, s.stepRecordId) for s in detail.steps],
        approvals=detail.approvals,
        parent=detail.parent,
        children=detail.children,
        events=backend.events(run_id) if events else None,
        tree=backend.tree(run_id) if detail.children else None,
    )


@app.command("show")
@with_place()
def show_command(
    run_id: RunId,
    events: Annotated[bool, typer.Option("--events", help="Also print the event log.")] = False,
    json_output: JsonOutput = False,
    *,
    place: Place,
) -> None:
    """A run: its header, steps with attempts and errors, outputs (and events)."""
    with place.backend() as backend:
        found = report(backend, run_id, events=events)
        definition = None if json_output else backend.definition_of(found.run)
    if json_output:
        render.write_json(found.model_dump(mode="json", exclude=None if events else {"events"}))
        return
    print_report(found, definition)


def print_report(found: RunReport, definition: Definition | None) -> None:
    from podium.cli.progress import steps_table
    from podium.cli.tree import tree_table

    out, run = render.out(), found.run
    _print_header(run)
    out.print()
    out.print(
        steps_table(list(found.steps), definition, render.now_utc(), run_status=found.run.status)
    )
    _print_attempts(found.steps)
    if found.tree:
        out.print()
        render.plain(out, "runs:")
        out.print(tree_table(found.tree, render.now_utc()))
    if run.outputs is not None:
        out.print()
        render.plain(out, "outputs:")
        render.print_json_value(out, run.outputs)
    if run.error and run.status == "failed":  # a recovered run may still carry its old error
        out.print()
        out.print(Text(f"error: {render.run_error_text(run.error)}", style="red"))
    if found.events is not None:
        out.print()
        render.plain(out, "events:")
        for event in found.events:
            render.plain(out, f"{event.sequence:>4}  {render.event_line(event)}")


def _print_header(run: RunView) -> None:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    now = render.now_utc()
    rows: list[tuple[str, str | Text]] = [
        ("run", run.id),
        ("definition", render.run_label(run)),
        ("status", render.status_text(run.status)),
        ("organization", run.organizationSlug),
        ("created", render.format_datetime(run.createdAt)),
        ("ended", render.format_datetime(run.endedAt)),
        ("duration", render.format_duration(render.run_duration(run, now))),
        ("parameters", render.short_json(run.parameters, limit=200)),
    ]
    if run.parentRunId:
        rows.append(("parent run", run.parentRunId))
    if run.recoveryInFlight:
        flight = run.recoveryInFlight
        rows.append(("recovery", f"{flight.get('action')} of {flight.get('stepId')} in flight"))
    for name, value in rows:
        grid.add_row(name, value)
    render.out().print(grid)


def _print_attempts(steps: list[StepDetail]) -> None:
    table = Table(box=None, pad_edge=False, header_style="bold", title_justify="left")
    for name in ("step", "attempt", "outcome", "worker", "started", "duration", "error"):
        table.add_column(name, no_wrap=name != "error")
    for step in steps:
        for attempt in step.attempts:
            retried = attempt.outcome == "retry_scheduled"
            table.add_row(
                step.stepId,
                str(attempt.attempt),
                render.status_text("failed" if retried else attempt.outcome).append(
                    " (retried)" if retried else ""
                ),
                attempt.workerId or "-",
                render.format_clock(attempt.startedAt),
                render.format_duration(render.between(attempt.startedAt, attempt.endedAt)),
                Text(render.error_text(attempt.error), style="red"),
            )
    if table.row_count:
        out = render.out()
        out.print()
        render.plain(out, "attempts:")
        out.print(table)


@app.command("watch")
@with_place()
def watch_command(run_id: RunId, json_output: JsonOutput = False, *, place: Place) -> None:
    """Follow a run until it ends (exit 0 completed, 1 otherwise, 130 interrupted).

    Over --url it follows the server's event stream (resuming it if the connection drops);
    on the local database it polls."""
    import asyncio

    from podium.cli.outcome import finish

    with place.backend() as backend:
        detail = backend.detail(run_id)  # one clear "not found" before any display
        definition = backend.definition_of(detail.run)
        final = asyncio.run(_watch(backend, detail, definition, json_output))
    finish(
        final,
        json_output=json_output,
        interrupted=f"stopped following run {detail.run.id}; the run continues",
    )


async def _watch(
    backend: Backend, detail: RunDetail, definition: Definition | None, json_output: bool
) -> RunDetail | None:
    import asyncio

    from podium.cli.progress import follow, mode_for
    from podium.cli.signals import StopSignals

    stop = asyncio.Event()
    with StopSignals(stop.set, stop.set):
        return await follow(
            backend,
            detail.run.id,
            render.out(),
            mode=mode_for(json_output),
            stop=stop,
            definition=definition,
        )
