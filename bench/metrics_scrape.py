"""Scrape benchmark (issue 12): ``GET /metrics`` work with 100,000 runs in the database.

Seeds ``--runs`` runs (2 steps each; 2 % of them active with queued and running steps, a few
hundred pending approvals), then times the state gauges read straight from the database (no
scrape cache) and the whole exposition, and prints p50/p95/max in milliseconds. Target: p95
under 250 ms.

    python bench/metrics_scrape.py [--only sqlite|postgresql] [--pg URL] [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from podium import metrics
from podium.domain.ids import new_id
from podium.storage.gauges import read_state
from podium.storage.store import SqlStore
from podium.storage.tables import approvals, runs, steps

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine import PG_DEFAULT, pg_schema_url

BATCH = 5000


def seed(store: SqlStore, n_runs: int) -> None:
    now = datetime.now(UTC)
    run_rows, step_rows, approval_rows = [], [], []
    for i in range(n_runs):
        rid = new_id()
        active = i % 50 == 0
        status = "running" if active else ("failed" if i % 17 == 0 else "completed")
        created = now - timedelta(seconds=n_runs - i)
        run_rows.append(
            {
                "id": rid,
                "organization_slug": f"org-{i % 20}",
                "definition_name": f"def-{i % 200}",
                "definition_version": "1.0.0",
                "snapshot": {},
                "parameters": {},
                "status": status,
                "max_parallel_steps": 4,
                "metadata": {},
                "created_at": created,
                "updated_at": created,
            }
        )
        for pos, step_id in enumerate(("a", "b")):
            step_status = ("running" if pos == 0 else "queued") if active else "completed"
            step_rows.append(
                {
                    "id": new_id(),
                    "run_id": rid,
                    "step_id": step_id,
                    "position": pos,
                    "type": "agent",
                    "status": step_status,
                    "queued_at": created,
                    "lease_expires_at": now + timedelta(seconds=30)
                    if step_status == "running"
                    else None,
                    "updated_at": created,
                    "metadata": {},
                }
            )
        if active and i % 100 == 0:
            approval_rows.append(
                {
                    "id": new_id(),
                    "organization_slug": f"org-{i % 20}",
                    "run_id": rid,
                    "step_record_id": step_rows[-1]["id"],
                    "conversation_id": rid,
                    "question": "ok?",
                    "options": ["continue"],
                    "status": "pending",
                    "on_timeout": "abort",
                    "created_at": created,
                }
            )
    for table, rows in ((runs, run_rows), (steps, step_rows), (approvals, approval_rows)):
        for start in range(0, len(rows), BATCH):
            chunk = rows[start : start + BATCH]
            store.db.write(lambda conn, t=table, c=chunk: conn.execute(sa.insert(t), c))


def timed(fn: Callable[[], object], samples: int) -> list[float]:
    fn()  # warm up (statement cache, connection)
    out = []
    for _ in range(samples):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def bench(label: str, url: str, n_runs: int, samples: int) -> list[tuple[str, ...]]:
    store = SqlStore.open(url)
    t0 = time.perf_counter()
    seed(store, n_runs)
    if not store.db.is_sqlite:  # what autovacuum does to tables this size
        with store.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(sa.text("VACUUM ANALYZE"))
    seeded = time.perf_counter() - t0
    state = read_state(store.db, datetime.now(UTC))
    assert state.runs_active["running"] == n_runs // 50, state
    # no scrape cache (ttl 0): every scrape reads the database, the worst case
    render = metrics.exposition(lambda: read_state(store.db, datetime.now(UTC)), ttl=0.0)
    rows = []
    for name, fn in (
        ("state gauges", lambda: read_state(store.db, datetime.now(UTC))),
        ("whole scrape", render),
    ):
        ms = sorted(timed(fn, samples))
        p95 = ms[int(len(ms) * 0.95) - 1]
        rows.append(
            (
                label,
                f"{n_runs}",
                name,
                f"{statistics.median(ms):.1f}",
                f"{p95:.1f}",
                f"{ms[-1]:.1f}",
                f"{seeded:.0f}",
            )
        )
    store.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--pg", default=os.environ.get("PODIUM_BENCH_DATABASE_URL", PG_DEFAULT))
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=100)
    args = parser.parse_args()
    rows: list[tuple[str, ...]] = []
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'scrape.db'}"
            rows += bench("sqlite", url, args.runs, args.samples)
    if args.only in (None, "postgresql"):
        url, drop = pg_schema_url(args.pg)
        try:
            rows += bench("postgresql", url, args.runs, args.samples)
        finally:
            drop()
    header = ("db", "runs", "what", "p50 ms", "p95 ms", "max ms", "seed s")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
