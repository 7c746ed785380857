"""D1/D4: a heartbeat must not cancel a step claimed while the heartbeat was in flight."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest

from podium.agents.registry.resolver import LocalAgents
from podium.domain.definition import parse_definition
from podium.engine.launcher import launch
from podium.storage.store import SqlStore
from tests.support import fast_settings, running_worker, wait_for

CHAIN = parse_definition(
    """
metadata: {name: heartbeat-race, version: 1.0.0}
orchestration:
  steps:
    - {id: s1, agent: sleep, input: {seconds: 0.15}}
    - {id: s2, agent: sleep, depends_on: [s1], input: {seconds: 0.15}}
    - {id: s3, agent: sleep, depends_on: [s2], input: {seconds: 0.15}}
    - {id: s4, agent: sleep, depends_on: [s3], input: {seconds: 0.15}}
    - {id: s5, agent: sleep, depends_on: [s4], input: {seconds: 0.15}}
    - {id: s6, agent: sleep, depends_on: [s5], input: {seconds: 0.15}}
    - {id: s7, agent: sleep, depends_on: [s6], input: {seconds: 0.15}}
    - {id: s8, agent: sleep, depends_on: [s7], input: {seconds: 0.15}}
    - {id: s9, agent: sleep, depends_on: [s8], input: {seconds: 0.15}}
    - {id: s10, agent: sleep, depends_on: [s9], input: {seconds: 0.15}}
"""
)


class SlowHeartbeatAnswer(SqlStore):
    """The lease renewal commits at once, but its answer reaches the worker 0.4 s later (a
    slow network or a busy thread pool): steps claimed meanwhile are not in the answer."""

    def renew_leases(
        self, *, worker_id: str, step_record_ids: Sequence[str], lease_seconds: float
    ) -> set[str]:
        held = super().renew_leases(
            worker_id=worker_id, step_record_ids=step_record_ids, lease_seconds=lease_seconds
        )
        time.sleep(0.4)  # fault injection (runs in the worker's database thread)
        return held


@pytest.mark.postgres
@pytest.mark.timeout(60)
async def test_heartbeat_does_not_orphan_steps_claimed_during_it(pg_schema_url: str) -> None:
    """D1/D4: one worker on PostgreSQL (database calls in threads) runs a chain of ten 0.15 s
    steps while each heartbeat's answer arrives 0.4 s after its commit. Every step claimed
    during a heartbeat must keep running: the run completes, each step in one attempt."""
    store = SlowHeartbeatAnswer.open(pg_schema_url)
    try:
        settings = fast_settings(pg_schema_url, heartbeat_seconds=0.3, lease_seconds=2.0)
        run_id = launch(store, CHAIN, {}, organization="acme")
        async with running_worker(store, settings, LocalAgents()) as worker:
            try:
                run = await wait_for(
                    lambda: store.get_run(run_id),
                    lambda r: r.status in ("completed", "failed", "aborted"),
                    timeout=6,
                )
            except AssertionError:
                stuck = [
                    (s.step_id, s.lease_owner, s.lease_expires_at)
                    for s in store.steps_of(run_id)
                    if s.status == "running"
                ]
                raise AssertionError(
                    f"run still running after 6 s with {worker.in_flight} step(s) in flight in "
                    f"worker {worker.id}; steps left running, leases renewed: {stuck}"
                ) from None
        assert run.status == "completed"
        for step in store.steps_of(run_id):
            assert [a.outcome for a in store.attempts_of(step.id)] == ["completed"]
    finally:
        store.close()
