"""D1: the crash drill on PostgreSQL (two worker processes, ``kill -9`` every few seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from podium.domain.events import EventType
from podium.storage.store import SqlStore
from tests.drills.harness import (
    DrillResult,
    Fleet,
    all_events,
    completed_events,
    crash_drill,
    epoch,
    step_events,
)

STEP_IDS = {"start", "left", "middle", "right", "join", "finish"}
UPSTREAM = {"left": ["start"], "middle": ["start"], "right": ["start"], "finish": ["join"]}


def check_d1(store: SqlStore, result: DrillResult) -> dict[str, int]:
    """Every run completed; every step ran (agent log); no step ran again after its
    completion was committed; exactly one stored result per step. Returns statistics."""
    by_key = result.by_key()
    executions = re_executed = 0
    for run_id in result.run_ids:
        run = store.get_run(run_id)
        assert run.status == "completed", (run_id, run.status, run.error)
        events = all_events(store, run_id)
        assert [e.sequence for e in events] == list(range(1, len(events) + 1))
        steps = store.steps_of(run_id)
        assert {s.step_id for s in steps} == STEP_IDS
        nonce_of: dict[str, str] = {}
        for s in steps:
            where = f"step {s.step_id} of run {run_id}"
            key = f"{run_id}:{s.id}:{s.generation}"
            records = by_key.get(key, [])
            starts = [r for r in records if r.phase == "start"]
            assert starts, f"{where} never ran (no start in the agent log)"
            executions += len(starts)
            re_executed += len(starts) > 1

            # exactly one stored result
            assert s.status == "completed", where
            mine = step_events(events, s.id)
            done = completed_events(mine)
            assert len(done) == 1, f"{where}: {len(done)} completed events"
            (completion,) = done
            assert completion.data["output"] == s.output, where
            assert mine[-1] is completion, (
                f"{where}: events after its completion: "
                f"{[e.type for e in mine if e.sequence > completion.sequence]}"
            )
            running_after = [
                e
                for e in mine
                if e.type == EventType.STEP_RUNNING and e.sequence > completion.sequence
            ]
            assert not running_after, where

            # never started again once the completion was committed
            committed_at = epoch(completion.timestamp)
            late = [r for r in starts if r.t >= committed_at]
            assert not late, f"{where} ran again after its completion at {committed_at}: {late}"

            # the stored output is the one of an execution that really ended before it
            nonce = s.output["output"]["nonce"]
            ends = {r.exec_id: r for r in records if r.phase == "end"}
            assert nonce in ends, f"{where}: stored output {nonce} matches no execution"
            assert ends[nonce].t < committed_at, where
            nonce_of[s.step_id] = nonce

        # downstream steps read the stored results of their upstream steps
        by_id = {s.step_id: s for s in steps}
        for step_id, ups in UPSTREAM.items():
            assert by_id[step_id].input["up"] == nonce_of[ups[0]], step_id
        assert by_id["join"].input["up"] == [nonce_of[u] for u in ("left", "middle", "right")]
    return {"executions": executions, "re_executed_steps": re_executed}


def check_logs(fleet: Fleet) -> None:
    text = fleet.stderr()
    for needle in ("Traceback", "unexpected error", "database is locked"):
        assert needle not in text, f"{needle!r} in worker stderr:\n{text}"


async def drill(
    url: str,
    tmp_path: Path,
    *,
    n_runs: int,
    launch_every: float,
    concurrency: int,
    kill_every: tuple[float, float],
    victims: str,
    min_kills: int,
) -> None:
    store = SqlStore.open(url)
    try:
        with Fleet(url, tmp_path, concurrency=concurrency) as fleet:
            result = await crash_drill(
                store,
                fleet,
                n_runs=n_runs,
                n_workers=2,
                launch_every=launch_every,
                kill_every=kill_every,
                victims=victims,
                timeout=200.0,
            )
            stats = check_d1(store, result)
            check_logs(fleet)
        print(
            f"D1 {n_runs} runs: {result.elapsed:.1f} s, {result.kills} kills, "
            f"{stats['executions']} executions of {n_runs * len(STEP_IDS)} steps, "
            f"{stats['re_executed_steps']} steps ran more than once"
        )
        # a drill whose kills never interrupted a step would prove little
        assert result.kills >= min_kills, f"only {result.kills} kills"
        assert stats["re_executed_steps"] >= 1, "no kill interrupted a step"
    finally:
        store.close()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(280)
async def test_d1_crash_drill_50_runs(pg_schema_url: str, tmp_path: Path) -> None:
    """D1: 50 runs (fan-out/fan-in, six steps of 50–300 ms) across 2 worker processes on
    PostgreSQL; a random worker is ``kill -9``-ed every 1–3 s and replaced. Every run ends
    completed, every step ran at least once, none ran again once its completion was
    committed, and each step has exactly one stored result."""
    await drill(
        pg_schema_url,
        tmp_path,
        n_runs=50,
        launch_every=0.4,
        concurrency=4,
        kill_every=(1.0, 3.0),
        victims="random",
        min_kills=5,
    )


@pytest.mark.postgres
@pytest.mark.timeout(120)
async def test_d1_crash_drill_scaled_down(pg_schema_url: str, tmp_path: Path) -> None:
    """D1 (scaled down to 8 runs, runs by default): the same checks as the full drill. To
    fit at least two kills in a few seconds, a worker is killed every 0.7–1.5 s, and the
    victim is a worker with a step in progress, so that each kill interrupts work."""
    await drill(
        pg_schema_url,
        tmp_path,
        n_runs=8,
        launch_every=0.6,
        concurrency=2,
        kill_every=(0.7, 1.5),
        victims="busy",
        min_kills=2,
    )
