"""``podium worker``: claim and run steps until SIGTERM/SIGINT.

Any number of these share one PostgreSQL database; on SQLite run one. The engine's worker
logs one INFO line per step started and finished; this command shows them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Annotated

import typer

from podium.cli import render
from podium.cli.options import (
    AgentTargets,
    DatabaseUrl,
    configure_logging,
    registry_for,
    settings_for,
)
from podium.cli.signals import StopSignals

# The engine, the store and the metrics are imported when the command runs, so that
# `podium worker --help` answers without them.
if TYPE_CHECKING:
    from podium.engine.worker import Worker

log = logging.getLogger(__name__)


async def serve(worker: Worker) -> int:
    """Run ``worker`` until a signal: the first stops it gracefully (exit 0), a second one
    cancels the steps still in flight (exit 130)."""
    from podium.events.webhooks.dispatcher import DispatcherTask

    task = asyncio.create_task(worker.run(), name="podium-worker")
    webhooks = DispatcherTask.start(worker.store.webhooks)  # beside the worker

    def graceful() -> None:
        log.info("stopping: letting %d step(s) in flight finish", worker.in_flight)
        worker.stop()

    def immediate() -> None:
        log.warning("stopping now: cancelling %d step(s) in flight", worker.in_flight)
        task.cancel()

    with StopSignals(graceful, immediate) as signals:
        (result,) = await asyncio.gather(task, return_exceptions=True)
        await webhooks.close()
    if isinstance(result, Exception):
        raise result
    log.info("worker %s stopped after completing %d step(s)", worker.id, worker.completed)
    return 130 if signals.count > 1 else 0


def worker_command(
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            "-c",
            min=1,
            envvar="PODIUM_WORKER_CONCURRENCY",
            help="Steps this worker runs at once. \\[default: 32]",
        ),
    ] = None,
    agent: AgentTargets = None,
    database_url: DatabaseUrl = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=0,
            max=65535,
            envvar="PODIUM_METRICS_PORT",
            help="Serve Prometheus /metrics on this port (this worker's counters and the "
            "database's gauges).",
        ),
    ] = None,
    metrics_host: Annotated[
        str,
        typer.Option(
            "--metrics-host", help="Address the metrics port listens on (0.0.0.0: every one)."
        ),
    ] = "127.0.0.1",
) -> None:
    """Claim and run steps until SIGTERM or SIGINT.

    The first signal lets the steps in flight finish (exit 0); a second one cancels them."""
    from podium import metrics
    from podium.agents.registry.files import load_startup_files
    from podium.engine.worker import Worker
    from podium.events.webhooks.startup import prepare_webhooks
    from podium.storage.store import SqlStore

    settings = settings_for(database_url=database_url, worker_concurrency=concurrency)
    configure_logging(logging.INFO)
    store = SqlStore.open(settings.database_url)
    stop_metrics = None
    try:
        if metrics_port is not None:  # issue 12: the counters of the work done here
            stop_metrics = metrics.serve(metrics_port, metrics_host, store.state_counts)
            port = getattr(stop_metrics, "port", metrics_port)
            render.plain(render.out(), f"metrics on http://{metrics_host}:{port}/metrics")
        load_startup_files(store)
        prepare_webhooks(store.webhooks)
        worker = Worker(store, registry_for(store, agent or []), settings, close_agents=True)
        render.plain(
            render.out(),
            f"worker {worker.id} on {store.describe()} "
            f"(concurrency {settings.worker_concurrency}); stop with Ctrl-C or SIGTERM",
        )
        render.out().file.flush()
        code = asyncio.run(serve(worker))
    finally:
        if stop_metrics is not None:
            stop_metrics()
        store.close()
    raise typer.Exit(code)
