"""Latency and scale: how fast a launch starts, how many steps workers run, how many launches
the API takes.

    python bench/scale.py [--only sqlite|postgresql] [--launches 200] [--runs 1000] [--pg URL]

1. **Launch to first step running** (both databases): a real server (``podium serve``'s app,
   embedded worker) on loopback; 200 runs of one no-op step launched one after another with
   ``POST /api/orchestrations``; the time from just before each request to the commit of its
   step's ``orchestration.step.running`` event (the event's timestamp: same machine, same
   clock). Prints p50 and p99.
2. **Steps per second with 1 and 2 ``podium worker`` processes** (PostgreSQL only; SQLite takes
   one working process): 1,000 runs of 5 chained no-op steps are launched first, then the
   workers are started and timed until every run has ended.
3. **Launch throughput through the API**: 1,000 ``POST /api/orchestrations`` from 16 concurrent
   clients against an API-only server (``worker=False``); runs per second.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import httpx

from api import PG_DEFAULT, pg_schema_url, server
from podium.domain.definition import parse_definition
from podium.engine.launcher import launch
from podium.storage.store import SqlStore

ONE_STEP = """
metadata: {name: bench-latency, version: 1.0.0}
orchestration:
  steps:
    - {id: only, agent: noop}
"""

FIVE = "\n".join(
    [
        "metadata: {name: bench-scale, version: 1.0.0}",
        "orchestration:",
        "  steps:",
        "    - {id: s0, agent: noop}",
        *(f"    - {{id: s{i}, agent: noop, depends_on: [s{i - 1}]}}" for i in range(1, 5)),
    ]
)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def launch_to_running(database_url: str, launches: int) -> list[float]:
    """Milliseconds from each launch request to its step's ``running`` event."""
    latencies = []
    with server(database_url) as base, httpx.Client(base_url=base, timeout=30) as client:
        client.post(
            "/api/definitions", content=ONE_STEP, headers={"content-type": "application/yaml"}
        ).raise_for_status()
        for i in range(launches + 10):
            sent = time.time()
            run_id = client.post(
                "/api/orchestrations", json={"definition": "bench-latency"}
            ).json()["id"]
            running = None
            deadline = time.monotonic() + 30
            while running is None:
                events = client.get(f"/api/orchestrations/{run_id}/events").json()
                items = events["items"] if isinstance(events, dict) else events
                running = next(
                    (e for e in items if e["type"] == "orchestration.step.running"), None
                )
                if running is None:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"run {run_id} never started its step")
                    time.sleep(0.002)
            at = datetime.fromisoformat(running["timestamp"]).timestamp()
            if i >= 10:  # the first ten warm the server up
                latencies.append((at - sent) * 1000)
    return latencies


def workers_throughput(database_url: str, runs: int, processes: int) -> float:
    """Steps per second of ``processes`` ``podium worker`` processes on ``runs`` x 5 steps."""
    store = SqlStore.open(database_url)
    definition = parse_definition(FIVE)
    ids = [launch(store, definition, {}, organization="bench") for _ in range(runs)]
    env = {**os.environ, "DATABASE_URL": database_url, "PODIUM_WORKER_CONCURRENCY": "64"}
    podium = str(Path(sys.executable).with_name("podium"))
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [podium, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(processes)
    ]
    try:
        deadline = time.monotonic() + 600
        while _unfinished(store):
            if time.monotonic() > deadline:
                raise SystemExit("the workers did not finish the runs in 10 minutes")
            time.sleep(0.05)
        wall = time.perf_counter() - started
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
        store.close()
    if len(ids) != runs:
        raise SystemExit("not every run was launched")
    return runs * 5 / wall


def _unfinished(store: SqlStore) -> bool:
    active = ("planning", "running", "checkpoint")
    return bool(store.list_runs(organization="bench", statuses=active, limit=1))


async def _launch_many(base: str, count: int, concurrency: int) -> float:
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        await client.post(
            "/api/definitions", content=ONE_STEP, headers={"content-type": "application/yaml"}
        )
        queue = list(range(count))

        async def one_client() -> None:
            while queue:
                queue.pop()
                response = await client.post(
                    "/api/orchestrations", json={"definition": "bench-latency"}
                )
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        return count / (time.perf_counter() - started)


def launch_throughput(database_url: str, count: int) -> float:
    with server(database_url, worker=False) as base:
        return asyncio.run(_launch_many(base, count, 16))


def fresh_database(db: str, path: Path, pg: str) -> tuple[str, Callable[[], None]]:
    """A new empty database: the SQLite file ``path``, or a new schema on ``pg``; with the
    function that drops it."""
    if db == "sqlite":
        return f"sqlite:///{path}", lambda: None
    found = pg_schema_url(pg)
    if found is None:
        raise SystemExit("PostgreSQL is not reachable")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--launches", type=int, default=200)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--pg", default=os.environ.get("PODIUM_BENCH_DATABASE_URL", PG_DEFAULT))
    args = parser.parse_args()
    lines = []
    dbs = [args.only] if args.only else ["sqlite", "postgresql"]
    for db in dbs:
        with tempfile.TemporaryDirectory() as tmp:
            url, drop = fresh_database(db, Path(tmp) / "latency.db", args.pg)
            try:
                lat = launch_to_running(url, args.launches)
            finally:
                drop()
            lines.append(
                f"{db:10}  launch -> first step running  p50 {pct(lat, 0.5):6.1f} ms  "
                f"p99 {pct(lat, 0.99):6.1f} ms  (n={len(lat)}, mean {statistics.fmean(lat):.1f})"
            )
            url, drop = fresh_database(db, Path(tmp) / "launches.db", args.pg)
            try:
                rate = launch_throughput(url, args.runs)
            finally:
                drop()
            lines.append(
                f"{db:10}  API launches, 16 clients      {rate:7.0f} runs/s  (n={args.runs})"
            )
            if db == "postgresql":
                for n in (1, 2):
                    url, drop = fresh_database(db, Path(tmp) / f"workers{n}.db", args.pg)
                    try:
                        sps = workers_throughput(url, args.runs, n)
                    finally:
                        drop()
                    plural = "es" if n > 1 else ""
                    lines.append(
                        f"{db:10}  {n} podium worker process{plural:2}       "
                        f"{sps:7.0f} steps/s  ({args.runs} runs x 5 steps)"
                    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
