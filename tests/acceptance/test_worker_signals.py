"""``podium worker`` on SIGTERM or Ctrl-C: steps in flight get the shutdown grace, then
their leases are given back at once (the next worker need not wait for lease expiry)."""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest

from podium.domain.definition import parse_definition
from podium.engine.launcher import launch
from podium.storage.store import SqlStore
from tests.acceptance.clitools import start_podium, stop
from tests.support import wait_for

LONG = parse_definition(
    """
metadata: {name: long, version: 1.0.0}
orchestration:
  steps:
    - {id: nap, agent: sleep, input: {seconds: 120}}
"""
)


@pytest.fixture
def store(db_url: str) -> Any:
    s = SqlStore.open(db_url)
    yield s
    s.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_a_stopped_worker_gives_its_steps_back_after_the_grace(
    store: SqlStore, db_url: str, signum: signal.Signals
) -> None:
    run_id = launch(store, LONG, {}, organization="default")
    proc = start_podium(
        "worker",
        db_url=db_url,
        PODIUM_SHUTDOWN_GRACE_SECONDS="1",
        PODIUM_LEASE_SECONDS="60",
    )
    try:
        await wait_for(
            lambda: store.steps_of(run_id)[0].status, lambda s: s == "running", timeout=60
        )
        signalled = time.monotonic()
        proc.send_signal(signum)
        code = proc.wait(timeout=60)
        took = time.monotonic() - signalled
    finally:
        _out, err = stop(proc)
    assert code == 0, err
    assert took < 8, f"stopping took {took:.1f} s"  # the 1 s grace, not the 60 s lease
    (step,) = store.steps_of(run_id)
    assert step.status == "queued"
    assert step.lease_owner is None
    assert step.recoveries == 0
    assert "Traceback" not in err
