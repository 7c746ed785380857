"""``podium run FILE``: launch a run on the local database, work it with an embedded worker and
follow it until it ends."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Annotated

import typer

from podium.agents.registry import LocalAgents
from podium.cli import render
from podium.cli.options import (
    AgentTargets,
    DatabaseUrl,
    DefinitionFile,
    JsonOutput,
    configure_logging,
    local_agents,
    open_store,
    parse_parameters,
    read_definition,
    settings_for,
)
from podium.cli.progress import Mode, RunView, follow
from podium.cli.signals import StopSignals
from podium.domain.definition import Definition, apply_parameters
from podium.engine.launcher import launch
from podium.engine.worker import Worker
from podium.settings import Settings
from podium.storage.store import SqlStore

EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class Followed:
    view: RunView | None  # None when following was interrupted before the run ended
    signals: int


async def work_and_follow(
    store: SqlStore,
    settings: Settings,
    agents: LocalAgents,
    run_id: str,
    definition: Definition,
    mode: Mode,
) -> Followed:
    """Run an embedded worker while following ``run_id``; stop the worker gracefully when the
    run ends or on the first SIGINT/SIGTERM (a second one cancels it)."""
    worker = Worker(store, agents, settings)
    worker_task = asyncio.create_task(worker.run(), name="podium-embedded-worker")
    stop = asyncio.Event()
    worker_task.add_done_callback(lambda _task: stop.set())

    def graceful() -> None:
        stop.set()
        worker.stop()

    def immediate() -> None:
        worker_task.cancel()

    with StopSignals(graceful, immediate) as signals:
        try:
            view = await follow(
                store, run_id, render.out(), mode=mode, stop=stop, definition=definition
            )
        finally:
            worker.stop()
            (result,) = await asyncio.gather(worker_task, return_exceptions=True)
    if isinstance(result, Exception):
        raise result
    return Followed(view, signals.count)


def _mode(json_output: bool) -> Mode:
    if json_output:
        return Mode.QUIET
    return Mode.LIVE if render.out().is_terminal else Mode.LINES


def run_command(
    file: DefinitionFile,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            metavar="KEY=VALUE",
            help="Launch parameter (repeatable). VALUE is read as JSON when it parses "
            "(numbers, true/false, objects) unless the parameter is a string.",
        ),
    ] = None,
    org: Annotated[
        str | None,
        typer.Option(
            "--org", envvar="PODIUM_ORG", help="Organization of the run. [default: default]"
        ),
    ] = None,
    agent: AgentTargets = None,
    follow_run: Annotated[
        bool,
        typer.Option(
            "--follow/--no-follow",
            help="Work and follow the run here, or only launch it (for `podium worker`).",
        ),
    ] = True,
    database_url: DatabaseUrl = None,
    json_output: JsonOutput = False,
) -> None:
    """Launch a run of FILE, work it here and follow it until it ends.

    Exit code 0 when the run completes, 1 when it fails or is aborted, 130 when interrupted.
    """
    definition = read_definition(file)
    parameters = parse_parameters(param or [], definition)
    apply_parameters(definition, parameters)  # refuse bad parameters before touching the db
    agents = local_agents(agent or [])
    settings = settings_for(database_url=database_url, organization=org)
    out = render.out()
    with open_store(settings) as store:
        run_id = launch(store, definition, parameters, organization=settings.organization)
        label = f"{definition.metadata.name}@{definition.metadata.version}"
        if not follow_run:
            if json_output:
                render.write_json({"runId": run_id, "status": store.get_run(run_id).status})
            else:
                render.plain(out, f"launched run {run_id} ({label}) on {store.db.describe()}")
                render.plain(
                    out, f"work it with: podium worker; see it with: podium runs show {run_id}"
                )
            return
        mode = _mode(json_output)
        configure_logging(logging.WARNING, console_stream=mode is Mode.LIVE)
        if mode is not Mode.QUIET:
            render.plain(out, f"launched run {run_id} ({label}) on {store.db.describe()}")
        followed = asyncio.run(work_and_follow(store, settings, agents, run_id, definition, mode))
        if followed.view is None:
            _report_interrupted(run_id, forced=followed.signals > 1)
            raise typer.Exit(EXIT_INTERRUPTED)
        if json_output:
            render.write_json(
                {
                    "run": render.run_json(followed.view.run),
                    "steps": [render.step_json(s) for s in followed.view.steps],
                }
            )
        else:
            _report_result(followed.view)
    raise typer.Exit(0 if followed.view.run.status == "completed" else 1)


def _report_result(view: RunView) -> None:
    run, out = view.run, render.out()
    retries = sum(max(step.attempt - 1, 0) for step in view.steps)
    duration = render.format_duration(render.run_duration(run, render.now_utc()))
    summary = f"{len(view.steps)} steps, {retries} retr{'y' if retries == 1 else 'ies'}"
    out.print(
        render.status_text(run.status),
        f"run {run.id} ({render.run_label(run)}) in {duration} ({summary})",
        soft_wrap=True,
        markup=False,
    )
    if run.outputs is not None:
        render.plain(out, "outputs:")
        render.print_json_value(out, run.outputs)
    if run.status == "failed":
        error = run.error or {}
        where = f"step {error['stepId']}: " if error.get("stepId") else ""
        render.plain(render.err(), f"error: run {run.id} failed: {where}{render.error_text(error)}")
    elif run.status == "aborted":
        render.plain(render.err(), f"error: run {run.id} was aborted")


def _report_interrupted(run_id: str, *, forced: bool) -> None:
    err = render.err()
    how = "stopped at once" if forced else "the embedded worker stopped gracefully"
    render.plain(err, f"interrupted: stopped following run {run_id}; {how}")
    render.plain(err, "  the run continues when a worker runs: podium worker")
    render.plain(err, f"  see it with: podium runs show {run_id}")
