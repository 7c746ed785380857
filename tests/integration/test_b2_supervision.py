"""B2: an unexpected exception in a worker's background loop is logged and the loop
recovers; a worker never reclaims its own live steps and never runs on without heartbeats.
Also the shutdown grace: steps still running after it are given back at once."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import pytest

from podium.agents.base import AgentContext
from podium.agents.registry.resolver import LocalAgents
from podium.domain.definition import parse_definition
from podium.engine.launcher import launch
from podium.engine.supervision import LoopFailed
from podium.engine.worker import Worker
from podium.errors import StorageUnavailable
from podium.storage.database import Database
from podium.storage.store import SqlStore
from tests.support import fast_settings, running_worker, wait_for, wait_terminal

SLOW = """
metadata: {name: slow, version: 1.0.0}
orchestration:
  steps:
    - {id: slow, agent: sleepy}
"""


class FaultyStore(SqlStore):
    """A real store whose ``renew_leases`` fails as told (``faults``: exceptions to raise,
    in order, before it works again; ``until``: raise ``StorageUnavailable`` until then)."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.faults: list[BaseException] = []
        self.always: BaseException | None = None
        self.renewals_after_fault = 0
        self.faulted = False

    def renew_leases(
        self, *, worker_id: str, step_record_ids: Sequence[str], lease_seconds: float
    ) -> set[str]:
        if self.always is not None:
            raise self.always
        if self.faults:
            self.faulted = True
            raise self.faults.pop(0)
        if self.faulted:
            self.renewals_after_fault += 1
        return super().renew_leases(
            worker_id=worker_id, step_record_ids=step_record_ids, lease_seconds=lease_seconds
        )


@pytest.fixture
def store(db_url: str) -> Any:
    s = FaultyStore(Database(db_url))
    s.migrate()
    yield s
    s.close()


def sleepy(seconds: float) -> tuple[LocalAgents, list[str]]:
    calls: list[str] = []

    async def work(input: Any, context: AgentContext) -> dict[str, Any]:
        calls.append(context.step_record_id)
        await asyncio.sleep(seconds)
        return {"slept": seconds}

    agents = LocalAgents()
    agents.add_python("sleepy", work)
    return agents, calls


def worker_lost_events(store: SqlStore, run_id: str) -> list[Any]:
    return [
        e
        for e in store.events_after(run_id)
        if e.data.get("reason") == "worker_lost"
        or (e.data.get("error") or {}).get("code") == "worker_lost"
    ]


async def test_b2_a_heartbeat_that_raises_once_goes_on(
    store: FaultyStore, db_url: str, caplog: Any
) -> None:
    """B2: renew_leases raises once; the heartbeat loop is restarted, keeps renewing, and
    the step (longer than two leases) completes on its first attempt, never reclaimed."""
    store.faults = [RuntimeError("renewal bug")]
    agents, calls = sleepy(4.0)
    settings = fast_settings(db_url, lease_seconds=1.5, heartbeat_seconds=0.3, sweep_seconds=0.2)
    run_id = launch(store, parse_definition(SLOW), {}, organization="acme")
    with caplog.at_level(logging.ERROR, logger="podium.engine.supervision"):
        async with running_worker(store, settings, agents):
            run = await wait_terminal(store, run_id, timeout=60)
    assert run.status == "completed"
    (step,) = store.steps_of(run_id)
    assert step.recoveries == 0
    assert step.attempt == 1
    assert len(calls) == 1
    assert worker_lost_events(store, run_id) == []
    assert store.renewals_after_fault >= 5  # the heartbeat went on after the fault
    failures = [r for r in caplog.records if "background loop heartbeat failed" in r.getMessage()]
    assert len(failures) == 1
    assert failures[0].exc_info is not None  # logged with its stack


async def test_b2_a_worker_never_reclaims_its_own_live_steps(
    store: FaultyStore, db_url: str
) -> None:
    """B2: heartbeats fail (database errors) for longer than the lease; the worker's own
    sweeper leaves the step it is running alone, and it completes once."""
    store.faults = [StorageUnavailable("database unavailable")] * 12  # ~3.6 s at 0.3 s
    agents, calls = sleepy(5.0)
    settings = fast_settings(db_url, lease_seconds=1.5, heartbeat_seconds=0.3, sweep_seconds=0.2)
    run_id = launch(store, parse_definition(SLOW), {}, organization="acme")
    async with running_worker(store, settings, agents):
        run = await wait_terminal(store, run_id, timeout=60)
    assert run.status == "completed"
    (step,) = store.steps_of(run_id)
    assert step.recoveries == 0
    assert len(calls) == 1
    assert worker_lost_events(store, run_id) == []


async def test_b2_a_loop_that_cannot_run_stops_the_worker(store: FaultyStore, db_url: str) -> None:
    """B2: renew_leases always raises: the worker does not run on without heartbeats; it
    stops and ``run`` raises LoopFailed (the CLI exits non-zero)."""
    store.always = RuntimeError("renewal always broken")
    agents, _calls = sleepy(60.0)
    settings = fast_settings(db_url, lease_seconds=5.0, heartbeat_seconds=0.3)
    launch(store, parse_definition(SLOW), {}, organization="acme")
    worker = Worker(store, agents, settings)
    started = time.monotonic()
    with pytest.raises(LoopFailed, match="heartbeat"):
        await asyncio.wait_for(worker.run(), 60)
    assert time.monotonic() - started < 30
    assert worker.in_flight == 0


async def test_stopping_gives_back_steps_still_running_after_the_grace(
    store: FaultyStore, db_url: str
) -> None:
    """Ctrl-C/SIGTERM: after PODIUM_SHUTDOWN_GRACE_SECONDS the step in flight is cancelled
    and queued again at once (no recovery counted); the next worker takes it at once."""
    agents, calls = sleepy(60.0)
    settings = fast_settings(db_url, lease_seconds=30.0, shutdown_grace_seconds=0.5)
    run_id = launch(store, parse_definition(SLOW), {}, organization="acme")
    worker = Worker(store, agents, settings)
    task = asyncio.create_task(worker.run())
    await wait_for(lambda: len(calls), lambda n: n == 1, timeout=30)
    stopped_at = time.monotonic()
    worker.stop()
    await asyncio.wait_for(task, 30)
    assert time.monotonic() - stopped_at < 5  # grace + giving back, not the 30 s lease
    (step,) = store.steps_of(run_id)
    assert step.status == "queued"
    assert step.lease_owner is None
    assert step.recoveries == 0
    given_back = [e for e in store.events_after(run_id) if e.data.get("reason")]
    assert given_back[-1].data["reason"] == "worker_stopped"
    quick, _ = sleepy(0.01)
    taken_at = time.monotonic()
    async with running_worker(store, settings, quick):
        run = await wait_terminal(store, run_id, timeout=30)
    assert run.status == "completed"
    assert time.monotonic() - taken_at < 10
    assert store.steps_of(run_id)[0].recoveries == 0


async def test_a_step_that_ends_within_the_grace_is_recorded(
    store: FaultyStore, db_url: str
) -> None:
    agents, calls = sleepy(0.5)
    settings = fast_settings(db_url, shutdown_grace_seconds=20.0)
    run_id = launch(store, parse_definition(SLOW), {}, organization="acme")
    worker = Worker(store, agents, settings)
    task = asyncio.create_task(worker.run())
    await wait_for(lambda: len(calls), lambda n: n == 1, timeout=30)
    worker.stop()
    await asyncio.wait_for(task, 30)
    assert store.get_run(run_id).status == "completed"
