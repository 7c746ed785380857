"""D6: a database outage costs time, never work: results are kept, leases are not counted
as lost, the API says 503, and every process reconnects by itself.

Each test runs on SQLite (its write lock held by another connection) and PostgreSQL (behind
a loopback proxy that refuses, drops or stalls connections); see :mod:`tests.faults.outages`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from podium.agents.registry.resolver import LocalAgents
from podium.domain.definition import parse_definition
from podium.engine.launcher import launch
from podium.errors import StorageUnavailable
from podium.storage.store import SqlStore
from tests.faults.outages import Cut
from tests.support import fast_settings, running_worker, wait_for, wait_terminal

GATED = """
metadata: {name: gated, version: 1.0.0}
orchestration:
  steps:
    - {id: slow, agent: gate}
    - {id: after, agent: echo, depends_on: [slow], input: {got: "{{ steps.slow.output }}"}}
"""


class Gate:
    """An agent that returns when the test opens the gate, and counts its calls."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.calls = 0
        self.returned = threading.Event()

    async def agent(self, input: Any) -> dict[str, Any]:
        self.calls += 1
        await asyncio.to_thread(self.open.wait, 60)
        self.returned.set()
        return {"call": self.calls}


def _outage_seconds(seconds: float) -> None:
    """Keep the database away for ``seconds``: the outage's length is what is tested."""
    time.sleep(seconds)


@pytest.mark.timeout(120)
async def test_d6_a_result_finished_during_an_outage_longer_than_the_lease_is_kept(
    cuttable: Cut,
) -> None:
    """D6: the step's agent returns while the database is away, for three leases. The
    worker keeps the result and writes it when the database is back: the agent is called
    once, the step is not reclaimed (no recovery counted, no ``worker_lost``), and the
    run completes."""
    store = SqlStore.open(cuttable.url)
    try:
        gate = Gate()
        agents = LocalAgents()
        agents.add_python("gate", gate.agent)
        settings = fast_settings(cuttable.url, lease_seconds=1.5, heartbeat_seconds=0.3)
        run_id = launch(store, parse_definition(GATED), {}, organization="acme")
        async with running_worker(store, settings, agents):
            await wait_for(lambda: gate.calls, lambda n: n == 1)
            cuttable.cut()
            try:
                gate.open.set()
                await wait_for(gate.returned.is_set, bool, timeout=10)
                await asyncio.to_thread(_outage_seconds, 3 * settings.lease_seconds)
            finally:
                cuttable.restore()
            run = await wait_terminal(store, run_id, timeout=30)
        assert run.status == "completed"
        assert gate.calls == 1, "a finished agent call was repeated"
        slow = next(s for s in store.steps_of(run_id) if s.step_id == "slow")
        assert slow.recoveries == 0
        assert [a.outcome for a in store.attempts_of(slow.id)] == ["completed"]
        reasons = [e.data.get("reason") for e in store.events_after(run_id)]
        assert "worker_lost" not in reasons
        assert store.db.availability.failures > 0, "the cut did not reach the worker"
    finally:
        store.close()


@pytest.mark.timeout(120)
async def test_d6_heartbeats_resume_after_an_outage_and_a_running_step_is_kept(
    cuttable: Cut,
) -> None:
    """D6: an agent still running through an outage longer than its lease keeps its claim:
    the worker renews the lease as soon as the database is back (before any sweeper takes
    the step), the call is not cancelled, and it completes once."""
    store = SqlStore.open(cuttable.url)
    try:
        gate = Gate()
        agents = LocalAgents()
        agents.add_python("gate", gate.agent)
        settings = fast_settings(cuttable.url, lease_seconds=1.5, heartbeat_seconds=0.3)
        run_id = launch(store, parse_definition(GATED), {}, organization="acme")
        async with running_worker(store, settings, agents):
            await wait_for(lambda: gate.calls, lambda n: n == 1)
            cuttable.cut()
            try:
                await asyncio.to_thread(_outage_seconds, 3 * settings.lease_seconds)
            finally:
                cuttable.restore()
            slow = next(s for s in store.steps_of(run_id) if s.step_id == "slow")
            # renewed: the lease lies in the future again, still this claim
            await wait_for(
                lambda: store.get_step(slow.id),
                lambda s: (
                    s.lease_expires_at is not None
                    and s.lease_expires_at.timestamp() > time.time() + 0.5
                ),
                timeout=10,
            )
            gate.open.set()
            run = await wait_terminal(store, run_id, timeout=30)
        assert run.status == "completed"
        assert gate.calls == 1
        assert store.get_step(slow.id).recoveries == 0
        assert [a.outcome for a in store.attempts_of(slow.id)] == ["completed"]
    finally:
        store.close()


@pytest.mark.timeout(60)
def test_d6_unavailable_writes_raise_storage_unavailable_and_work_again_after(
    cuttable: Cut,
) -> None:
    """D6: during the cut a write fails as :class:`StorageUnavailable` (never a raw driver
    error) and is noted by the process; once the database is back the same store writes
    again without being reopened."""
    store = SqlStore.open(cuttable.url)
    try:
        defn = parse_definition(GATED)
        launch(store, defn, {}, organization="acme")
        cuttable.cut()
        try:
            with pytest.raises(StorageUnavailable):
                launch(store, defn, {}, organization="acme")
            if not cuttable.writes_only:
                with pytest.raises(StorageUnavailable):
                    store.list_runs()
        finally:
            cuttable.restore()
        assert store.db.availability.unavailable_within(30)
        launch(store, defn, {}, organization="acme")
        assert len(store.list_runs()) == 2
    finally:
        store.close()
