"""D3: one holder at a time per step attempt under crash faults, and fencing of late
completions."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

from podium.domain.definition import parse_definition
from podium.domain.events import EventType
from podium.domain.outcomes import ErrorCode, StepError
from podium.engine.launcher import launch
from podium.errors import LeaseLost
from podium.storage.store import SqlStore
from tests.drills.agents import Rec
from tests.drills.harness import Fleet, all_events, crash_drill
from tests.support import wait_for


@dataclass(frozen=True)
class Execution:
    exec_id: str
    key: str
    pid: int
    start: float
    end: float  # its end/cancel record, else when its process was killed, else infinity
    how: str


def executions(records: list[Rec], deaths: dict[int, float]) -> list[Execution]:
    starts = {r.exec_id: r for r in records if r.phase == "start"}
    ends = {r.exec_id: r for r in records if r.phase in ("end", "cancel")}
    out = []
    for exec_id, s in starts.items():
        if exec_id in ends:
            end, how = ends[exec_id].t, ends[exec_id].phase
        elif s.pid in deaths:
            end, how = deaths[s.pid], "killed"
        else:
            end, how = float("inf"), "never ended"
        out.append(Execution(exec_id, s.key, s.pid, s.t, end, how))
    return out


def overlaps(execs: list[Execution]) -> list[tuple[Execution, Execution]]:
    """Pairs of executions of the same step attempt whose lifetimes overlap."""
    by_key: dict[str, list[Execution]] = defaultdict(list)
    for e in execs:
        by_key[e.key].append(e)
    bad = []
    for group in by_key.values():
        group.sort(key=lambda e: e.start)
        bad += [(a, b) for a, b in itertools.pairwise(group) if a.end > b.start]
    return bad


@pytest.mark.postgres
@pytest.mark.timeout(120)
async def test_d3_workers_never_run_the_same_step_attempt_at_once(
    pg_schema_url: str, tmp_path: Path
) -> None:
    """D3: three worker processes on one PostgreSQL; a worker with a step in progress is
    SIGKILLed every 0.8–1.6 s and replaced. From the agents' own start/end records (and the
    kill times), two executions of one step attempt never overlap: a re-execution starts only
    after the previous holder ended or died. Runs still complete."""
    store = SqlStore.open(pg_schema_url)
    try:
        with Fleet(pg_schema_url, tmp_path, concurrency=8) as fleet:
            result = await crash_drill(
                store,
                fleet,
                n_runs=6,
                n_workers=3,
                launch_every=0.3,
                kill_every=(0.8, 1.6),
                victims="busy",
                step_ms=(200, 700),
                timeout=90,
            )
        for run_id in result.run_ids:
            assert store.get_run(run_id).status == "completed", run_id
        execs = executions(result.records, result.deaths)
        repeated = [k for k, n in Counter(e.key for e in execs).items() if n > 1]
        print(
            f"D3: {result.elapsed:.1f} s, {result.kills} kills, {len(execs)} executions, "
            f"{len(repeated)} step attempts ran more than once"
        )
        assert not overlaps(execs), overlaps(execs)
        assert repeated, "no kill interrupted a step: the drill proved nothing"
        killed = [e for e in execs if e.how == "killed"]
        assert killed, "no execution was killed"
    finally:
        store.close()


FENCED = parse_definition(
    """
metadata: {name: d3-fenced, version: 1.0.0}
orchestration:
  steps:
    - {id: only, agent: drill-work, input: {seconds: 0}}
"""
)


async def test_d3_late_completion_from_a_lost_lease_is_rejected(db_url: str) -> None:
    """D3 (fencing): worker "old" claims a step with a short lease; the lease expires and
    the sweeper requeues the step; worker "new" claims it. The old holder's heartbeat no
    longer covers the step, and its completion and its failure are both rejected with
    LeaseLost, before and after the new holder completes. The stored output is the new
    holder's, recorded once."""
    store = SqlStore.open(db_url)
    try:
        run_id = launch(store, FENCED, {}, organization="acme")
        (old,) = store.claim(worker_id="old", capacity=1, lease_seconds=0.2)
        reclaimed = await wait_for(
            lambda: store.reclaim_expired(max_recoveries=5), bool, timeout=10
        )
        assert reclaimed == [(old.step_record_id, "requeued")]
        (new,) = store.claim(worker_id="new", capacity=1, lease_seconds=30)
        assert new.step_record_id == old.step_record_id
        assert new.claim_token > old.claim_token
        assert (
            store.renew_leases(
                worker_id="old", step_record_ids=[old.step_record_id], lease_seconds=30
            )
            == set()
        )

        with pytest.raises(LeaseLost):
            store.complete(old, output={"by": "old"}, resolved_input={"seconds": 0})
        with pytest.raises(LeaseLost):
            store.fail(
                old,
                error=StepError(ErrorCode.AGENT_EXECUTION_ERROR, "late", True),
                retry_at=None,
            )
        step = store.get_step(old.step_record_id)
        assert (step.status, step.lease_owner, step.output) == ("running", "new", None)

        store.complete(new, output={"by": "new"}, resolved_input={"seconds": 0})
        with pytest.raises(LeaseLost):
            store.complete(old, output={"by": "old"}, resolved_input={"seconds": 0})

        step = store.get_step(old.step_record_id)
        assert (step.status, step.output) == ("completed", {"by": "new"})
        assert store.get_run(run_id).status == "completed"
        completed = [e for e in all_events(store, run_id) if e.type == EventType.STEP_COMPLETED]
        assert [e.data["output"] for e in completed] == [{"by": "new"}]
        assert [e.data["workerId"] for e in completed] == ["new"]
    finally:
        store.close()
