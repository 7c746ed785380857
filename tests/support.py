"""Helpers shared by tests: a worker running in the background, waiting with deadlines."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from podium.agents.base import AgentResolver
from podium.agents.registry.resolver import LocalAgents
from podium.domain.definition import Definition, parse_definition
from podium.engine.launcher import launch
from podium.engine.worker import Worker
from podium.settings import Settings
from podium.storage.records import RunRecord
from podium.storage.store import SqlStore

T = TypeVar("T")

TERMINAL = ("completed", "failed", "aborted")


def fast_settings(url: str, **overrides: Any) -> Settings:
    """Short leases and sweeps so that recovery tests finish in seconds."""
    values: dict[str, Any] = {
        "database_url": url,
        "lease_seconds": 2.0,
        "heartbeat_seconds": 0.4,
        "sweep_seconds": 0.3,
        "poll_seconds": 0.2,
        "worker_concurrency": 16,
    }
    values.update(overrides)
    return Settings(**values)


def definition(yaml_text: str) -> Definition:
    return parse_definition(yaml_text)


async def wait_for(
    probe: Callable[[], T], done: Callable[[T], bool], *, timeout: float = 20.0
) -> T:
    """Poll ``probe`` (run in a thread) until ``done(value)``; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(probe)
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}")
        await asyncio.sleep(0.02)


async def wait_terminal(store: SqlStore, run_id: str, timeout: float = 30.0) -> RunRecord:
    return await wait_for(
        lambda: store.get_run(run_id), lambda r: r.status in TERMINAL, timeout=timeout
    )


@asynccontextmanager
async def running_worker(
    store: SqlStore, settings: Settings, agents: AgentResolver | None = None
) -> AsyncIterator[Worker]:
    """A worker working in the background for the duration of the block."""
    worker = Worker(store, agents or LocalAgents(), settings)
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)


async def run_to_end(
    store: SqlStore,
    settings: Settings,
    doc: str | Definition,
    parameters: dict[str, Any] | None = None,
    agents: AgentResolver | None = None,
    timeout: float = 30.0,
) -> RunRecord:
    """Launch ``doc`` and run it with one worker until it ends."""
    defn = parse_definition(doc) if isinstance(doc, str) else doc
    run_id = launch(store, defn, parameters or {}, organization="acme")
    async with running_worker(store, settings, agents):
        return await wait_terminal(store, run_id, timeout)
