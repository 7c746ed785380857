"""Memory: resident memory of one worker over many steps, and the peak per workload.

    python bench/memory.py [--only sqlite|postgresql] [--steps 20000] [--pg URL]

For each database, in one process with one worker (as ``bench/engine.py``): W1, W2 and W3 once
each, printing the peak resident set size after each (``ru_maxrss``); then W3 (200 runs x 5
steps) repeated until ``--steps`` steps have run, printing the resident memory after the first
round (warm-up) and after the last, and the growth between them. Target: under 20 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import sys
import tempfile
from pathlib import Path

from engine import PG_DEFAULT, WORKLOADS, pg_schema_url, run_workload
from podium.settings import Settings
from podium.storage.store import SqlStore


def rss_mb() -> float:
    """This process's resident memory now, in MB (Linux ``/proc/self/statm``)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3  # kB on Linux


async def measure(label: str, url: str, total_steps: int) -> list[str]:
    store = SqlStore.open(url)
    settings = Settings(database_url=url, worker_concurrency=64, poll_seconds=1.0)
    lines = []
    for key in sorted(WORKLOADS):
        name, make, _ = WORKLOADS[key]
        await run_workload(store, settings, make(0))
        lines.append(f"{label:10}  {name:16}  peak RSS {peak_mb():7.1f} MB")
    _, make_w3, per_round = WORKLOADS["W3"]
    rounds = max(total_steps // per_round, 2)
    warm = 0.0
    for k in range(rounds):
        await run_workload(store, settings, make_w3(k))
        if k == 0:
            gc.collect()
            warm = rss_mb()
    gc.collect()
    end = rss_mb()
    lines.append(
        f"{label:10}  {rounds * per_round} steps (W3 x {rounds})  RSS after warm-up "
        f"{warm:.1f} MB, at the end {end:.1f} MB: growth {end - warm:+.1f} MB"
    )
    store.close()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--pg", default=os.environ.get("PODIUM_BENCH_DATABASE_URL", PG_DEFAULT))
    args = parser.parse_args()
    lines: list[str] = []
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'memory.db'}"
            lines += asyncio.run(measure("sqlite", url, args.steps))
    if args.only in (None, "postgresql"):
        url, drop = pg_schema_url(args.pg)
        try:
            lines += asyncio.run(measure("postgresql", url, args.steps))
        finally:
            drop()
    print("\n".join(lines))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
