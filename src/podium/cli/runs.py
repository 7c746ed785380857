"""``podium runs list|show|watch``: what runs there are and how they went."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from podium.cli import render
from podium.cli.options import DatabaseUrl, JsonOutput, open_store, settings_for
from podium.cli.progress import Mode, RunView, follow, steps_table
from podium.cli.signals import StopSignals
from podium.domain.definition import Definition, parse_definition
from podium.domain.statuses import RunStatus
from podium.errors import PodiumError
from podium.storage.records import AttemptRecord, RunRecord, StepRecord
from podium.storage.store import SqlStore

app = typer.Typer(help="List, inspect and watch runs.", no_args_is_help=True)

RunId = Annotated[
    str, typer.Argument(metavar="RUN", help="Run id, or a unique prefix of 8+ characters.")
]


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
def list_command(
    status: Annotated[
        list[str] | None,
        typer.Option("--status", "-s", help="Only runs in this status (repeatable)."),
    ] = None,
    definition: Annotated[
        str | None, typer.Option("--definition", "-d", help="Only runs of this definition.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000)] = 20,
    database_url: DatabaseUrl = None,
    json_output: JsonOutput = False,
) -> None:
    """Runs, newest first."""
    statuses = _statuses(status or [])
    with open_store(settings_for(database_url=database_url), migrate=False) as store:
        runs = store.list_runs(statuses=statuses, definition=definition, limit=limit)
    if json_output:
        render.write_json([render.run_json(r) for r in runs])
        return
    if not runs:
        render.plain(render.out(), "no runs")
        return
    now = render.now_utc()
    table = Table(box=None, pad_edge=False, header_style="bold")
    for name in ("id", "definition", "status", "created", "duration"):
        table.add_column(name, no_wrap=True, justify="right" if name == "duration" else "left")
    for run in runs:
        table.add_row(
            run.id,
            render.run_label(run),
            render.status_text(run.status),
            render.format_datetime(run.created_at),
            render.format_duration(render.run_duration(run, now)),
        )
    render.out().print(table)


def _definition_of(store: SqlStore, run_id: str) -> Definition | None:
    """The run's pinned definition, for retry limits; None if it cannot be read."""
    try:
        return parse_definition(store.get_snapshot(run_id))
    except PodiumError:
        return None


@app.command("show")
def show_command(
    run_id: RunId,
    events: Annotated[bool, typer.Option("--events", help="Also print the event log.")] = False,
    database_url: DatabaseUrl = None,
    json_output: JsonOutput = False,
) -> None:
    """A run: its header, steps with attempts and errors, outputs (and events)."""
    with open_store(settings_for(database_url=database_url), migrate=False) as store:
        run_id = store.find_run_id(run_id)
        run = store.get_run(run_id)
        steps = store.steps_of(run_id)
        attempts = {s.id: store.attempts_of(s.id) for s in steps}
        log = store.events_after(run_id, 0, limit=100_000) if events else []
        definition = _definition_of(store, run_id)
    if json_output:
        doc = {
            "run": render.run_json(run),
            "steps": [render.step_json(s, attempts[s.id]) for s in steps],
        }
        if events:
            doc["events"] = [e.envelope() for e in log]
        render.write_json(doc)
        return
    out = render.out()
    _print_header(run)
    out.print()
    out.print(steps_table(steps, definition, render.now_utc()))
    _print_attempts(steps, attempts)
    if run.outputs is not None:
        out.print()
        render.plain(out, "outputs:")
        render.print_json_value(out, run.outputs)
    if run.error:
        out.print()
        where = f"step {run.error['stepId']}: " if run.error.get("stepId") else ""
        out.print(Text(f"error: {where}{render.error_text(run.error)}", style="red"))
    if events:
        out.print()
        render.plain(out, "events:")
        for event in log:
            render.plain(out, f"{event.sequence:>4}  {render.event_line(event)}")


def _print_header(run: RunRecord) -> None:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    now = render.now_utc()
    rows: list[tuple[str, str | Text]] = [
        ("run", run.id),
        ("definition", render.run_label(run)),
        ("status", render.status_text(run.status)),
        ("organization", run.organization_slug),
        ("created", render.format_datetime(run.created_at)),
        ("ended", render.format_datetime(run.ended_at)),
        ("duration", render.format_duration(render.run_duration(run, now))),
        ("parameters", render.short_json(run.parameters, limit=200)),
    ]
    if run.parent_run_id:
        rows.append(("parent run", run.parent_run_id))
    for name, value in rows:
        grid.add_row(name, value)
    render.out().print(grid)


def _print_attempts(steps: list[StepRecord], attempts: dict[str, list[AttemptRecord]]) -> None:
    table = Table(box=None, pad_edge=False, header_style="bold", title_justify="left")
    for name in ("step", "attempt", "outcome", "worker", "started", "duration", "error"):
        table.add_column(name, no_wrap=name != "error")
    for step in steps:
        for attempt in attempts[step.id]:
            table.add_row(
                step.step_id,
                str(attempt.attempt),
                render.status_text(
                    "failed" if attempt.outcome == "retry_scheduled" else attempt.outcome
                ).append("" if attempt.outcome != "retry_scheduled" else " (retried)"),
                attempt.worker_id or "-",
                render.format_clock(attempt.started_at),
                render.format_duration(render.between(attempt.started_at, attempt.ended_at)),
                Text(render.error_text(attempt.error), style="red"),
            )
    if table.row_count:
        out = render.out()
        out.print()
        render.plain(out, "attempts:")
        out.print(table)


@app.command("watch")
def watch_command(
    run_id: RunId,
    database_url: DatabaseUrl = None,
) -> None:
    """Follow a run worked by other processes until it ends (exit 0 completed, 1 otherwise)."""
    with open_store(settings_for(database_url=database_url), migrate=False) as store:
        run_id = store.find_run_id(run_id)  # one clear "not found" before any display
        definition = _definition_of(store, run_id)
        mode = Mode.LIVE if render.out().is_terminal else Mode.LINES
        view = asyncio.run(_watch(store, run_id, definition, mode))
    if view is None:
        raise typer.Exit(130)
    raise typer.Exit(0 if view.run.status == "completed" else 1)


async def _watch(
    store: SqlStore, run_id: str, definition: Definition | None, mode: Mode
) -> RunView | None:
    stop = asyncio.Event()
    with StopSignals(stop.set, stop.set):
        return await follow(
            store, run_id, render.out(), mode=mode, stop=stop, definition=definition
        )
