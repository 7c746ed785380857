"""D2: a killed worker's steps are reclaimed within lease + one sweep interval, also when it
dies before its first heartbeat."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from podium.domain.definition import parse_definition
from podium.domain.events import EventType
from podium.engine.launcher import launch
from podium.storage.records import EventRecord, StepRecord
from podium.storage.store import SqlStore
from tests.drills.harness import FAST, Fleet, all_events, epoch
from tests.support import wait_for, wait_terminal

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(90)]

# the first execution works for a minute (it is killed long before); the recovery is quick
ONE_STEP = parse_definition(
    """
metadata: {name: d2-one-step, version: 1.0.0}
orchestration:
  steps:
    - {id: only, agent: drill-work, input: {first_seconds: 60, seconds: 0.2}}
"""
)

# scheduling on a loaded two-core machine: process wake-up, the claim transaction, NOTIFY
SLACK = 0.6


def running_by(store: SqlStore, run_id: str, worker_id: str) -> list[EventRecord]:
    return [
        e
        for e in all_events(store, run_id)
        if e.type == EventType.STEP_RUNNING and e.data.get("workerId") == worker_id
    ]


async def held_by(store: SqlStore, run_id: str, worker_id: str) -> StepRecord:
    (step,) = store.steps_of(run_id)
    return await wait_for(
        lambda: store.get_step(step.id),
        lambda s: s.status == "running" and s.lease_owner == worker_id,
        timeout=15,
    )


async def test_d2_worker_killed_mid_step_is_reclaimed_within_lease_plus_sweep(
    pg_schema_url: str, tmp_path: Path
) -> None:
    """D2: worker A runs a step and has renewed its lease (heartbeats seen in the database);
    A is SIGKILLed mid-step; worker B runs the step again within lease + one sweep interval
    of the kill, and not before A's last lease expired. The run then completes."""
    lease, sweep = FAST["lease"], FAST["sweep"]
    store = SqlStore.open(pg_schema_url)
    try:
        with Fleet(pg_schema_url, tmp_path) as fleet:
            a = fleet.start()
            run_id = launch(store, ONE_STEP, {}, organization="acme")
            step = await held_by(store, run_id, a.worker_id)
            (claim,) = running_by(store, run_id, a.worker_id)
            # mid-step: A has heartbeated at least once (its lease was pushed forward)
            await wait_for(
                lambda: store.get_step(step.id),
                lambda s: (
                    s.lease_expires_at is not None
                    and epoch(s.lease_expires_at) > epoch(claim.timestamp) + lease + 0.1
                ),
                timeout=5,
            )
            b = fleet.start()
            killed_at = time.time()
            a.kill()
            last_lease = store.get_step(step.id).lease_expires_at
            assert last_lease is not None
            (again,) = await wait_for(
                lambda: running_by(store, run_id, b.worker_id), bool, timeout=lease + 10
            )
            reclaimed_after = epoch(again.timestamp) - killed_at
            print(f"D2 mid-step: reclaimed {reclaimed_after:.3f} s after the kill")
            assert again.timestamp >= last_lease, "reclaimed before the lease expired"
            assert reclaimed_after <= lease + sweep + SLACK, reclaimed_after

            run = await wait_terminal(store, run_id, timeout=15)
            assert run.status == "completed"
            starts = [r for r in fleet.records() if r.phase == "start"]
            assert [r.pid for r in starts] == [a.pid, b.pid]
            assert starts[1].t > killed_at
            attempts = store.attempts_of(step.id)
            assert [x.outcome for x in attempts] == ["worker_lost", "completed"]
            assert store.get_step(step.id).recoveries == 1
    finally:
        store.close()


async def test_d2_worker_killed_before_first_heartbeat_is_reclaimed_in_time(
    pg_schema_url: str, tmp_path: Path
) -> None:
    """D2: worker A (lease 2.5 s, first heartbeat due 2.4 s after it starts) claims a step and
    is SIGKILLed at once, before any heartbeat (its worker row was never renewed and the
    step's lease is the claim's); worker B runs the step again within lease + one sweep
    interval of the kill, and not before the claim's lease expired."""
    lease_a, sweep = 2.5, FAST["sweep"]
    store = SqlStore.open(pg_schema_url)
    try:
        with Fleet(pg_schema_url, tmp_path) as fleet:
            a = fleet.start(lease=lease_a, heartbeat=2.4)
            run_id = launch(store, ONE_STEP, {}, organization="acme")
            step = await held_by(store, run_id, a.worker_id)
            # B starts while A dies: waiting for B first let a loaded machine delay the kill
            # past A's first heartbeat
            b = fleet.start(wait=False)
            killed_at = time.time()
            a.kill()
            b.wait_ready()
            b_ready_at = time.time()

            (row,) = [w for w in store.list_workers() if w.id == a.worker_id]
            assert row.heartbeat_at == row.started_at, "A heartbeated before it was killed"
            (claim,) = running_by(store, run_id, a.worker_id)
            lease_end = store.get_step(step.id).lease_expires_at
            assert lease_end is not None
            assert abs(epoch(lease_end) - epoch(claim.timestamp) - lease_a) < 0.01

            (again,) = await wait_for(
                lambda: running_by(store, run_id, b.worker_id), bool, timeout=lease_a + 10
            )
            reclaimed_after = epoch(again.timestamp) - killed_at
            print(
                f"D2 before first heartbeat: reclaimed {reclaimed_after:.3f} s after the kill "
                f"(B ready {b_ready_at - killed_at:.3f} s after it)"
            )
            assert again.timestamp >= lease_end, "reclaimed before the lease expired"
            # within one sweep of the lease's end, or of B being up if a loaded machine
            # started it later than that (B's start-up is not the reclaim's latency)
            waited_from = max(lease_a, b_ready_at - killed_at)
            assert reclaimed_after <= waited_from + sweep + SLACK, reclaimed_after

            run = await wait_terminal(store, run_id, timeout=15)
            assert run.status == "completed"
            assert [r.pid for r in fleet.records() if r.phase == "start"] == [a.pid, b.pid]
    finally:
        store.close()
