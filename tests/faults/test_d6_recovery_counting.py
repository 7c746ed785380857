"""D6 in the sweeper: a lapsed lease whose worker is alive is not a lost worker, and after
an outage leases get a full lease again before anything is reclaimed. Times are passed
explicitly, so these tests decide by data, not by the clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from podium.domain.definition import parse_definition
from podium.engine.launcher import launch
from podium.storage import claims
from podium.storage.store import SqlStore, utcnow

ONE = """
metadata: {name: one, version: 1.0.0}
orchestration:
  steps:
    - {id: only, agent: echo}
"""
LEASE = 10.0


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    s = SqlStore.open(db_url)
    yield s
    s.close()


def _claimed(store: SqlStore, worker: str) -> tuple[str, str]:
    run_id = launch(store, parse_definition(ONE), {}, organization="acme")
    store.register_worker(worker, 4)
    (step,) = store.claim(worker_id=worker, capacity=1, lease_seconds=LEASE)
    return run_id, step.step_record_id


def _heartbeat(store: SqlStore, worker: str, at: datetime) -> None:
    store.db.write(
        lambda conn: claims.renew_leases(
            conn, worker_id=worker, step_record_ids=[], lease_seconds=LEASE, now=at
        )
    )


def _sweep(store: SqlStore, at: datetime) -> list[tuple[str, str]]:
    return store.db.write(
        lambda conn: claims.reclaim_expired(
            conn, now=at, max_recoveries=5, skip_locked=store.skip_locked
        )
    )


def test_d6_a_lapsed_lease_of_a_live_worker_is_requeued_without_counting(
    store: SqlStore,
) -> None:
    """D6: the owner heartbeated after the step's lease ran out (alive, but it did not renew
    this step, for instance because the claim's answer was lost in an outage): the step is
    queued again with reason ``lease_expired`` and no recovery is counted."""
    run_id, record_id = _claimed(store, "w-alive")
    expiry = utcnow() + timedelta(seconds=LEASE)
    _heartbeat(store, "w-alive", expiry + timedelta(seconds=1))
    assert _sweep(store, expiry + timedelta(seconds=2)) == [(record_id, "requeued")]
    step = store.get_step(record_id)
    assert (step.status, step.recoveries) == ("queued", 0)
    queued = [e for e in store.events_after(run_id) if e.type == "orchestration.step.queued"]
    assert queued[-1].data["reason"] == "lease_expired"
    assert [a.outcome for a in store.attempts_of(record_id)] == ["lease_expired"]


def test_d6_a_lapsed_lease_of_a_silent_worker_still_counts_as_worker_lost(
    store: SqlStore,
) -> None:
    """D2/D5 unchanged: an owner that has not heartbeated since the lease ran out is lost."""
    run_id, record_id = _claimed(store, "w-dead")
    expiry = utcnow() + timedelta(seconds=LEASE)
    assert _sweep(store, expiry + timedelta(seconds=2)) == [(record_id, "requeued")]
    step = store.get_step(record_id)
    assert (step.status, step.recoveries) == ("queued", 1)
    queued = [e for e in store.events_after(run_id) if e.type == "orchestration.step.queued"]
    assert queued[-1].data["reason"] == "worker_lost"


def test_d6_extending_leases_after_an_outage_saves_them_from_the_sweeper(
    store: SqlStore,
) -> None:
    """D6: after an outage the sweeper gives every running step a full lease from now
    (``extend_leases``); a sweep within that lease takes nothing back, a sweep after it
    (the worker really is gone) does."""
    _, record_id = _claimed(store, "w-outage")
    back = utcnow() + timedelta(seconds=LEASE + 5)  # the database returns after the lease
    extended = store.db.write(
        lambda conn: claims.extend_leases(conn, now=back, lease_seconds=LEASE)
    )
    assert extended == 1
    assert _sweep(store, back + timedelta(seconds=LEASE - 1)) == []
    assert store.get_step(record_id).status == "running"
    assert _sweep(store, back + timedelta(seconds=LEASE + 1)) == [(record_id, "requeued")]
    assert store.get_step(record_id).recoveries == 1
