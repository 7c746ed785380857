"""A step's completion and the release of its dependents (one statement on PostgreSQL,
two on SQLite): fenced together, with the same events in the same order."""

from __future__ import annotations

import pytest

from podium.domain.definition import parse_definition
from podium.domain.events import EventType
from podium.engine.launcher import launch
from podium.errors import LeaseLost
from podium.storage.store import SqlStore
from tests.support import wait_for

FAN = parse_definition(
    """
metadata: {name: fan-release, version: 1.0.0}
orchestration:
  steps:
    - {id: a, agent: noop}
    - {id: c, agent: noop, depends_on: [a]}
    - {id: b, agent: noop, depends_on: [a]}
    - {id: d, agent: noop, depends_on: [a, b]}
"""
)


def _types(store: SqlStore, run_id: str) -> list[tuple[str, str | None]]:
    return [(e.type, e.step_id) for e in store.events_after(run_id)]


async def test_a_fenced_out_completion_releases_no_dependent(db_url: str) -> None:
    store = SqlStore.open(db_url)
    try:
        run_id = launch(store, FAN, {}, organization="acme")
        (old,) = store.claim(worker_id="old", capacity=1, lease_seconds=0.2)
        await wait_for(lambda: store.reclaim_expired(max_recoveries=5), bool, timeout=10)
        (new,) = store.claim(worker_id="new", capacity=1, lease_seconds=30)
        before = _types(store, run_id)

        with pytest.raises(LeaseLost):
            store.complete(old, output={"by": "old"})
        assert _types(store, run_id) == before  # nothing written, no event
        steps = {s.step_id: s for s in store.steps_of(run_id)}
        assert steps["a"].status == "running"
        assert {steps[n].status for n in "bcd"} == {"pending"}

        store.complete(new, output={"by": "new"})
        after = _types(store, run_id)[len(before) :]
        # step.completed, then the released dependents queued in definition order; d still
        # waits for b
        assert after[:3] == [
            (str(EventType.STEP_COMPLETED), "a"),
            (str(EventType.STEP_QUEUED), "c"),
            (str(EventType.STEP_QUEUED), "b"),
        ]
        steps = {s.step_id: s for s in store.steps_of(run_id)}
        assert (steps["a"].status, steps["a"].output) == ("completed", {"by": "new"})
        assert (steps["b"].status, steps["c"].status, steps["d"].status) == (
            "queued",
            "queued",
            "pending",
        )
        sequences = [e.sequence for e in store.events_after(run_id)]
        assert sequences == list(range(1, len(sequences) + 1))
    finally:
        store.close()


async def test_completing_the_last_dependency_queues_the_join(db_url: str) -> None:
    store = SqlStore.open(db_url)
    try:
        run_id = launch(store, FAN, {}, organization="acme")
        (a,) = store.claim(worker_id="w", capacity=1, lease_seconds=30)
        claimed = store.complete(a, output=1, claim_next=2)
        assert sorted(s.step_id for s in claimed) == ["b", "c"]
        by_id = {s.step_id: s for s in claimed}
        store.complete(by_id["c"], output=3)
        assert {s.step_id: s.status for s in store.steps_of(run_id)}["d"] == "pending"
        (d,) = store.complete(by_id["b"], output=2, claim_next=1)
        assert d.step_id == "d"
        store.complete(d, output=4)
        assert store.get_run(run_id).status == "completed"
    finally:
        store.close()
