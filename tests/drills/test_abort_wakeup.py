"""An abort reaches a step running in another worker process within about a second, by
wake-up rather than lease loss, and that worker's log says the run was aborted."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from podium.domain.definition import parse_definition
from podium.engine.launcher import launch
from podium.storage.store import SqlStore
from tests.drills.agents import read_log
from tests.drills.harness import Fleet
from tests.support import wait_for

LONG = parse_definition(
    """
metadata: {name: abortable, version: 1.0.0}
orchestration:
  steps:
    - {id: long, agent: drill-work, input: {seconds: 60}}
"""
)


@pytest.mark.timeout(90)
async def test_abort_reaches_another_worker_process_within_a_second(
    db_url: str, tmp_path: Path
) -> None:
    # heartbeats far apart: a cancellation within 1 s cannot come from a lease check.
    # PostgreSQL wakes the worker by NOTIFY (it polls only every 5 s); SQLite has no
    # notifications between processes, so its worker looks for aborts while it polls.
    poll = 0.5 if db_url.startswith("sqlite") else 5.0
    store = SqlStore.open(db_url)
    try:
        with Fleet(
            db_url,
            tmp_path,
            env={"PODIUM_DRILL_LOG_LEVEL": "INFO"},
            lease=30.0,
            heartbeat=10.0,
            poll=poll,
        ) as fleet:
            worker = fleet.start()
            run_id = launch(store, LONG, {}, organization="acme")
            await wait_for(
                lambda: [r for r in read_log(fleet.log_path) if r.phase == "start"],
                bool,
                timeout=30,
            )
            aborted_at = time.time()
            store.abort(run_id, actor="test", reason="drill")
            (cancel,) = await wait_for(
                lambda: [r for r in read_log(fleet.log_path) if r.phase == "cancel"],
                bool,
                timeout=30,
            )
            print(f"abort reached the other worker process after {cancel.t - aborted_at:.3f} s")
            assert cancel.t - aborted_at < 1.0
            await wait_for(
                lambda: worker.stderr(), lambda text: "cancelled: run aborted" in text, timeout=10
            )
            assert "lease lost" not in worker.stderr()
    finally:
        store.close()
