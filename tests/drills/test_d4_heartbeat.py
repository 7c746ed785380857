"""D4: a slow step that keeps heartbeating is never reclaimed."""

from __future__ import annotations

from pathlib import Path

import pytest

from podium.domain.definition import parse_definition
from podium.domain.events import EventType
from podium.engine.launcher import launch
from podium.storage.store import SqlStore
from tests.drills.harness import FAST, Fleet, all_events, epoch
from tests.support import wait_for, wait_terminal

LEASE = FAST["lease"]
SLOW_SECONDS = 3 * LEASE

SLOW = parse_definition(
    f"""
metadata: {{name: d4-slow, version: 1.0.0}}
orchestration:
  steps:
    - {{id: blocking, agent: drill-slow-sync, input: {{seconds: {SLOW_SECONDS}}}}}
    - {{id: awaiting, agent: drill-work, input: {{seconds: {SLOW_SECONDS}}}}}
"""
)


@pytest.mark.timeout(60)
async def test_d4_slow_heartbeating_step_is_never_reclaimed(db_url: str, tmp_path: Path) -> None:
    """D4: two steps that each take 3× the lease (4.5 s against a 1.5 s lease), one blocking
    a thread, one awaiting, run in a worker process that heartbeats every 0.3 s (on
    PostgreSQL a second worker sweeps too). Their leases are seen renewed past the claim's
    lease; they are never reclaimed (no ``worker_lost`` re-queue, one attempt, no recovery),
    each ran exactly once, and the run completes."""
    store = SqlStore.open(db_url)
    try:
        with Fleet(db_url, tmp_path) as fleet:
            fleet.start()
            if not store.is_sqlite:  # SQLite runs one worker per database
                fleet.start()
            run_id = launch(store, SLOW, {}, organization="acme")
            steps = {s.step_id: s for s in store.steps_of(run_id)}
            running = await wait_for(
                lambda: [store.get_step(s.id) for s in steps.values()],
                lambda rows: all(r.status == "running" for r in rows),
                timeout=15,
            )
            claimed_at = {r.id: epoch(r.started_at) for r in running if r.started_at}
            # both leases pushed past what the claim granted: heartbeats are renewing them
            await wait_for(
                lambda: [store.get_step(s.id) for s in steps.values()],
                lambda rows: all(
                    r.status == "running"
                    and r.lease_expires_at is not None
                    and epoch(r.lease_expires_at) > claimed_at[r.id] + LEASE + 0.5
                    for r in rows
                ),
                timeout=10,
            )
            run = await wait_terminal(store, run_id, timeout=SLOW_SECONDS + 20)
            assert run.status == "completed", run.error

            events = all_events(store, run_id)
            lost = [
                e
                for e in events
                if e.type == EventType.STEP_QUEUED and e.data.get("reason") == "worker_lost"
            ]
            assert not lost, lost
            records = fleet.records()
            for step in steps.values():
                row = store.get_step(step.id)
                assert (row.status, row.attempt, row.recoveries) == ("completed", 1, 0)
                assert [a.outcome for a in store.attempts_of(step.id)] == ["completed"]
                mine = [r for r in records if r.step_id == step.step_id]
                assert [r.phase for r in mine] == ["start", "end"], mine
                assert mine[1].t - mine[0].t >= SLOW_SECONDS - 0.05
            assert "reclaimed after lease expiry" not in fleet.stderr(), fleet.stderr()
    finally:
        store.close()
