"""``podium run FILE``: launch a run and follow it until it ends.

On the local database the run is launched from the file and worked by an embedded worker;
with ``--url`` the file is pushed to the server as a definition version, launched there by
name and version, and followed through the server's event stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from podium.cli import render
from podium.cli.options import (
    AgentTargets,
    ApiKey,
    DatabaseUrl,
    DefinitionFile,
    JsonOutput,
    ServerUrl,
    configure_logging,
    local_agents,
    open_store,
    parse_parameters,
    read_definition,
    registry_for,
    settings_for,
)
from podium.cli.signals import StopSignals
from podium.errors import Conflict

# The worker, the client, the live view and the definition model are imported where the
# command uses them, so that `podium run --help` loads none of them.
if TYPE_CHECKING:
    from podium.cli.progress import Mode
    from podium.client.backend import Backend
    from podium.client.local import LocalBackend
    from podium.domain.definition import Definition
    from podium.service.views import RunDetail, RunSummary
    from podium.settings import Settings


@dataclass(frozen=True)
class Followed:
    detail: RunDetail | None  # None when following was interrupted before the run ended
    signals: int


async def work_and_follow(
    backend: LocalBackend,
    settings: Settings,
    agent_targets: Sequence[str],
    run_id: str,
    definition: Definition,
    mode: Mode,
) -> Followed:
    """Run an embedded worker while following ``run_id``; stop the worker gracefully when the
    run ends or on the first SIGINT/SIGTERM (a second one cancels it)."""
    from podium.cli.progress import follow
    from podium.engine.worker import Worker

    agents = registry_for(backend.store, agent_targets)
    worker = Worker(backend.store, agents, settings, close_agents=True)
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
            detail = await follow(
                backend, run_id, render.out(), mode=mode, stop=stop, definition=definition
            )
        finally:
            worker.stop()
            (result,) = await asyncio.gather(worker_task, return_exceptions=True)
    if isinstance(result, Exception):
        raise result
    return Followed(detail, signals.count)


async def only_follow(
    backend: Backend, run_id: str, definition: Definition, mode: Mode
) -> Followed:
    """Follow a run that a server works, until it ends or a SIGINT/SIGTERM."""
    from podium.cli.progress import follow

    stop = asyncio.Event()
    with StopSignals(stop.set, stop.set) as signals:
        detail = await follow(
            backend, run_id, render.out(), mode=mode, stop=stop, definition=definition
        )
    return Followed(detail, signals.count)


def _launched(run: RunSummary, where: str) -> str:
    return f"launched run {run.id} ({render.run_label(run)}) on {where}"


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
            "--org",
            envvar="PODIUM_ORG",
            help="Organization of the run on the local database (a server takes it from the "
            "API key). \\[default: default]",
        ),
    ] = None,
    agent: AgentTargets = None,
    follow_run: Annotated[
        bool,
        typer.Option(
            "--follow/--no-follow",
            help="Follow the run until it ends, or only launch it (locally: for `podium worker`).",
        ),
    ] = True,
    url: ServerUrl = None,
    api_key: ApiKey = None,
    database_url: DatabaseUrl = None,
    json_output: JsonOutput = False,
    refresh_cache: Annotated[
        bool,
        typer.Option(
            "--refresh-cache",
            help="Recompute cached steps and store their results again (resets their TTL).",
        ),
    ] = False,
) -> None:
    """Launch a run of FILE and follow it until it ends.

    Locally the run is worked here by an embedded worker. With --url, FILE is pushed to the
    server (an unchanged document is accepted again; a changed one needs a new version),
    launched there and followed through its event stream.

    Exit code 0 when the run completes, 1 when it fails or is aborted, 130 when interrupted.
    """
    from podium.domain.definition import apply_parameters

    definition = read_definition(file)
    parameters = parse_parameters(param or [], definition)
    apply_parameters(definition, parameters)  # refuse bad parameters before going anywhere
    if url:
        if agent:
            raise typer.BadParameter(
                "in-process agents run in the server; register them there", param_hint="'--agent'"
            )
        _run_remote(
            file, definition, parameters, url, api_key, follow_run, json_output, refresh_cache
        )
        return
    local_agents(agent or [])  # check the targets before anything is launched
    settings = settings_for(database_url=database_url, organization=org)
    _run_local(
        definition, parameters, settings, agent or [], follow_run, json_output, refresh_cache
    )


def _run_local(
    definition: Definition,
    parameters: dict[str, Any],
    settings: Settings,
    agents: Sequence[str],
    follow_run: bool,
    json_output: bool,
    refresh: bool = False,
) -> NoReturn:
    from podium.cli.outcome import finish
    from podium.cli.progress import Mode, mode_for
    from podium.client.local import LocalBackend

    out = render.out()
    with open_store(settings) as store:
        backend = LocalBackend(store, settings)
        run = backend.launch_document(definition, parameters, refresh=refresh)
        if not follow_run:
            if json_output:
                render.write_json(run)
            else:
                render.plain(out, _launched(run, backend.where))
                render.plain(
                    out, f"work it with: podium worker; see it with: podium runs show {run.id}"
                )
            raise typer.Exit(0)
        mode = mode_for(json_output)
        configure_logging(logging.WARNING, console_stream=mode is Mode.LIVE)
        if mode is not Mode.QUIET:
            render.plain(out, _launched(run, backend.where))
        followed = asyncio.run(work_and_follow(backend, settings, agents, run.id, definition, mode))
    how = "stopped at once" if followed.signals > 1 else "the embedded worker stopped gracefully"
    finish(
        followed.detail,
        json_output=json_output,
        interrupted=f"stopped following run {run.id}; {how}\n"
        "  the run continues when a worker runs: podium worker\n"
        f"  see it with: podium runs show {run.id}",
    )


def _run_remote(
    file: Path,
    definition: Definition,
    parameters: dict[str, Any],
    url: str,
    api_key: str | None,
    follow_run: bool,
    json_output: bool,
    refresh: bool = False,
) -> NoReturn:
    from podium.cli.outcome import finish
    from podium.cli.progress import Mode, mode_for
    from podium.client.remote import RemoteBackend

    out = render.out()
    meta = definition.metadata
    with RemoteBackend(url, api_key=api_key) as backend:
        try:
            backend.push(file.read_bytes(), activate=True)
        except Conflict as exc:
            raise Conflict(f"{exc.message} (bump metadata.version in {file})") from None
        run = backend.launch(meta.name, meta.version, parameters, refresh=refresh)
        watch = f"podium runs watch {run.id} --url {backend.where}"
        if not follow_run:
            if json_output:
                render.write_json(run)
            else:
                render.plain(out, _launched(run, backend.where))
                render.plain(out, f"follow it with: {watch}")
            raise typer.Exit(0)
        mode = mode_for(json_output)
        if mode is not Mode.QUIET:
            render.plain(out, _launched(run, backend.where))
        followed = asyncio.run(only_follow(backend, run.id, definition, mode))
    finish(
        followed.detail,
        json_output=json_output,
        interrupted=f"stopped following run {run.id}; it continues on the server\n"
        f"  follow it again with: {watch}",
    )
