"""D6 with worker processes: 30 runs on 2 workers, and PostgreSQL cut off for 5 s mid-load.

The workers reach PostgreSQL through a loopback proxy (:mod:`tests.faults.pgproxy`) that
refuses connections and resets the open ones for the outage; the test itself reads the
database directly. The workers' leases (4 s, renewed every second) are shorter than the
outage, so every lease lapses while the database is away: the test shows that none of it
is taken for a lost worker and no finished agent call runs again. (With the 1.5 s leases of
the crash drills, a worker on this loaded 2-core machine sometimes misses a renewal for
other reasons under the post-outage backlog, which is D1's business, not D6's.)
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest

from podium.domain.definition import Definition
from podium.engine.launcher import launch
from podium.storage.store import SqlStore
from tests.drills.harness import Fleet, all_events, drill_definition, epoch
from tests.faults.pgproxy import PgProxy
from tests.support import TERMINAL, wait_for

N_RUNS, N_WORKERS, OUTAGE, LAUNCH_EVERY = 30, 2, 5.0, 0.25
LEASES = {"lease": 4.0, "heartbeat": 1.0, "sweep": 0.5}


async def _launch_steadily(store: SqlStore, defn: Definition, run_ids: list[str]) -> None:
    for _ in range(N_RUNS):
        run_ids.append(await asyncio.to_thread(launch, store, defn, {}, organization="acme"))
        await asyncio.sleep(LAUNCH_EVERY)  # pacing the load, not waiting for anything


def _outage(proxy: PgProxy, seconds: float) -> None:
    """Refuse and reset every worker connection for ``seconds`` (the outage is the point)."""
    with proxy.outage("refuse"):
        time.sleep(seconds)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(240)
async def test_d6_outage_drill_30_runs_2_workers_5s(pg_schema_url: str, tmp_path: Path) -> None:
    """D6: 30 runs, 2 worker processes, a 5 s outage while they work. Every run completes;
    the runs in flight at the cut finish within outage + 5 s; no agent call that had
    finished before the outage is repeated (nor any other); no recovery is counted."""
    store = SqlStore.open(pg_schema_url)
    proxy = PgProxy.to_url(pg_schema_url).start()
    try:
        env = {"PODIUM_DB_CONNECT_TIMEOUT": "2"}
        with Fleet(proxy.url(pg_schema_url), tmp_path, env=env, **LEASES) as fleet:
            for _ in range(N_WORKERS):
                fleet.start()
            defn = drill_definition()
            # a steady load (one launch every LAUNCH_EVERY s, as D1 does); the cut comes
            # once a third of the runs are launched, so runs are in flight and more keep
            # arriving during the outage (launches go straight to the database)
            run_ids: list[str] = []
            launcher = asyncio.create_task(_launch_steadily(store, defn, run_ids))
            await wait_for(lambda: len(run_ids), lambda n: n >= N_RUNS // 3, timeout=60)
            cut_at = time.time()
            in_flight = [r.id for r in store.list_runs(limit=1000) if r.status not in TERMINAL]
            finished_before = {r.key for r in fleet.records() if r.phase == "end"}
            await asyncio.to_thread(_outage, proxy, OUTAGE)
            restored_at = time.time()
            await launcher
            runs = await wait_for(
                lambda: store.list_runs(limit=1000),
                lambda rs: len(rs) == N_RUNS and all(r.status in TERMINAL for r in rs),
                timeout=90,
            )
            fleet.check_no_unexpected_exit()
            records = fleet.records()
            stderr = fleet.stderr()
            fleet.stop_all()
        assert {r.id for r in runs} == set(run_ids)
        assert {r.status for r in runs} == {"completed"}, stderr
        ended = {r.id: epoch(r.ended_at) for r in runs if r.ended_at is not None}
        late = max(ended[rid] for rid in in_flight) - cut_at
        starts = Counter(r.key for r in records if r.phase == "start")
        repeated_after_finish = sorted(k for k in finished_before if starts[k] > 1)
        repeated = sorted(k for k, n in starts.items() if n > 1)
        recoveries = sum(s.recoveries for rid in run_ids for s in store.steps_of(rid))
        reasons = Counter(e.data.get("reason") for rid in run_ids for e in all_events(store, rid))
        print(
            f"D6 drill: {len(in_flight)} of {N_RUNS} runs in flight at the cut; the last "
            f"finished {late:.2f} s after the cut (outage {OUTAGE} s, restored "
            f"{restored_at - cut_at:.2f} s after the cut); agent calls "
            f"{sum(starts.values())} for {len(starts)} step attempts, repeated: "
            f"{len(repeated)} ({len(repeated_after_finish)} of them finished before the "
            f"outage); recoveries counted: {recoveries}; requeue reasons: {dict(reasons)}"
        )
        for rid in run_ids:
            for e in all_events(store, rid):
                if e.data.get("reason") in ("worker_lost", "lease_expired"):
                    print(
                        f"  {e.data['reason']} {epoch(e.timestamp) - restored_at:+.2f} s "
                        f"after the restore: {e.data}"
                    )
        after = [r for r in runs if epoch(r.created_at) > restored_at and r.ended_at]
        normal = sorted(ended[r.id] - epoch(r.created_at) for r in after)
        before = sorted(
            ended[r.id] - epoch(r.created_at)
            for r in runs
            if r.id in ended and ended[r.id] < cut_at
        )
        print(f"  finished before the cut, run duration s: {[round(x, 1) for x in before]}")
        flight = sorted(ended[rid] - cut_at for rid in in_flight)
        print(f"  in flight, s after the cut: {[round(x, 1) for x in flight]}")
        print(f"  launched after the restore, run duration s: {[round(x, 1) for x in normal]}")
        assert in_flight, "the outage hit no run in flight"
        assert late <= OUTAGE + 5.0, late
        assert repeated_after_finish == []
        assert repeated == []
        assert recoveries == 0
        assert reasons["worker_lost"] == 0
    finally:
        proxy.close()
        store.close()
