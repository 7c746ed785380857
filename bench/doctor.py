"""Doctor benchmark: the whole ``podium doctor`` (every check) on 100,000 runs.

Writes 100,000 runs (three steps and one event each; 1% running under a live worker, 10%
failed, the rest completed, spread over a day) with bulk inserts, on SQLite and, when
reachable, PostgreSQL; then times ``diagnose`` over every organization, as the local
operator and ``podium doctor`` see it. Target: under 5 s.

    python bench/doctor.py [--runs 100000] [--repeat 3] [--only sqlite|postgresql] [--pg URL]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.doctor.bulk import populate

from podium.doctor.runner import diagnose
from podium.service.diagnostics import options_for
from podium.settings import Settings
from podium.storage.store import SqlStore

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
TARGET_SECONDS = 5.0


def bench(url: str, runs: int, repeat: int) -> tuple[float, list[float], int]:
    store = SqlStore.open(url)
    try:
        started = time.perf_counter()
        populate(store, runs)
        filled = time.perf_counter() - started
        settings = Settings(database_url=url)
        timings: list[float] = []
        findings = 0
        for _ in range(repeat):
            options = options_for(settings, organization=None, environ={})
            t0 = time.perf_counter()
            report = diagnose(store, options, None)
            timings.append(time.perf_counter() - t0)
            findings = len(report.findings) + len(report.failed_checks)
        return filled, timings, findings
    finally:
        store.close()


def _pg_schema(base: str) -> tuple[str, str]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(base.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return f"{base}?options=-csearch_path%3D{schema}", schema


def _drop(base: str, schema: str) -> None:
    engine = sa.create_engine(base.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--pg", default=PG_URL)
    args = parser.parse_args()
    worst = 0.0
    for name in ("sqlite", "postgresql"):
        if args.only and args.only != name:
            continue
        schema = None
        with tempfile.TemporaryDirectory() as tmp:
            if name == "sqlite":
                url = f"sqlite:///{tmp}/bench.db"
            else:
                try:
                    url, schema = _pg_schema(args.pg)
                except sa.exc.OperationalError as exc:
                    print(f"postgresql: skipped ({exc.__class__.__name__})")
                    continue
            try:
                filled, timings, findings = bench(url, args.runs, args.repeat)
            finally:
                if schema:
                    _drop(args.pg, schema)
        worst = max(worst, statistics.median(timings))
        print(
            f"{name}: {args.runs} runs written in {filled:.1f} s; doctor (all checks) "
            f"median {statistics.median(timings):.3f} s, max {max(timings):.3f} s "
            f"over {len(timings)}; findings {findings}"
        )
    verdict = "PASS" if worst < TARGET_SECONDS else "FAIL"
    print(f"{verdict}: target under {TARGET_SECONDS:g} s")
    return 0 if worst < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
