"""D5: a step that crashes its worker every time fails with ``worker_lost`` after
``maxRecoveries``, and nothing else is affected."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from podium.domain.definition import parse_definition
from podium.engine.launcher import launch
from podium.storage.store import SqlStore
from tests.drills.harness import Fleet
from tests.support import TERMINAL

MAX_RECOVERIES = 2

POISON = parse_definition(
    """
metadata: {name: d5-poison, version: 1.0.0}
orchestration:
  steps:
    - {id: boom, agent: drill-crash, input: {}}
"""
)

CALM = parse_definition(
    """
metadata: {name: d5-calm, version: 1.0.0}
orchestration:
  steps:
    - {id: one, agent: drill-work, input: {min_ms: 100, max_ms: 300}}
    - {id: two, agent: drill-work, depends_on: [one], input: {min_ms: 100, max_ms: 300}}
    - {id: three, agent: drill-work, depends_on: [one], input: {min_ms: 100, max_ms: 300}}
    - {id: four, agent: drill-work, depends_on: [two, three], input: {min_ms: 100, max_ms: 300}}
"""
)


@pytest.mark.timeout(60)
async def test_d5_step_that_kills_its_worker_fails_with_worker_lost(
    db_url: str, tmp_path: Path
) -> None:
    """D5: with PODIUM_MAX_RECOVERIES=2, a step whose agent SIGKILLs its own worker process
    is run 3 times (a fresh worker is started after each death; on PostgreSQL a second worker
    is always up), then fails with ``worker_lost`` and fails its run. Workers run one step at
    a time, so the crashes take down only the poison step: an independent run launched at the
    same time completes with every step run once, never recovered."""
    store = SqlStore.open(db_url)
    workers = 1 if store.is_sqlite else 2  # SQLite runs one worker per database
    try:
        with Fleet(
            db_url,
            tmp_path,
            env={"PODIUM_MAX_RECOVERIES": str(MAX_RECOVERIES)},
            concurrency=1,
            lease=1.0,
            heartbeat=0.25,
            sweep=0.25,
        ) as fleet:
            poison = launch(store, POISON, {}, organization="acme")
            calm = launch(store, CALM, {}, organization="acme")
            for _ in range(workers):
                fleet.start()
            deaths = 0
            deadline = time.monotonic() + 45
            while True:
                assert time.monotonic() < deadline, (
                    f"runs not terminal after 45 s ({deaths} deaths)\n{fleet.stderr()}"
                )
                for w in fleet.started:
                    if w.died_at is None and not w.alive:  # killed by its own agent
                        assert w.wait_exit(5) == -signal.SIGKILL, w.stderr()
                        deaths += 1
                        fleet.start()
                statuses = [store.get_run(r).status for r in (poison, calm)]
                if all(s in TERMINAL for s in statuses):
                    break
                await asyncio.sleep(0.05)  # polling interval, not a synchronisation

            run = store.get_run(poison)
            assert run.status == "failed"
            assert run.error is not None
            assert run.error["code"] == "worker_lost", run.error
            (boom,) = store.steps_of(poison)
            assert boom.status == "failed"
            assert boom.error is not None
            assert boom.error["code"] == "worker_lost", boom.error
            assert boom.recoveries == MAX_RECOVERIES
            outcomes = [a.outcome for a in store.attempts_of(boom.id)]
            assert outcomes == ["worker_lost"] * MAX_RECOVERIES + ["failed"], outcomes
            records = fleet.records()
            boom_starts = [r for r in records if r.step_id == "boom"]
            assert len(boom_starts) == MAX_RECOVERIES + 1
            assert deaths == MAX_RECOVERIES + 1
            assert len({r.pid for r in boom_starts}) == MAX_RECOVERIES + 1

            assert store.get_run(calm).status == "completed"
            for step in store.steps_of(calm):
                assert (step.status, step.attempt, step.recoveries) == ("completed", 1, 0)
                phases = [r.phase for r in records if r.key.split(":")[1] == step.id]
                assert phases == ["start", "end"], (step.step_id, phases)
            assert "Traceback" not in fleet.stderr(), fleet.stderr()
    finally:
        store.close()
