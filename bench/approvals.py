"""Approvals inbox benchmark (issue 10 §10): ``GET /api/orchestrations/approvals`` with
10,000 pending approvals of one organization (and as many decided ones and another
organization's, so that the index has to do the filtering), on SQLite and PostgreSQL.

Each request goes through the whole API in-process (auth, query checks, storage, the JSON
response) with ``httpx.ASGITransport``; the first page, a filtered page and a page deep in
the cursor chain are timed. Target: p95 < 200 ms.

    python bench/approvals.py [--only sqlite|postgresql] [--pg URL] [--pending N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa

from podium.api.app import create_app
from podium.domain.ids import new_id
from podium.settings import Settings
from podium.storage.store import SqlStore
from podium.storage.tables import approvals

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
REQUESTS = 200


def fill(store: SqlStore, pending: int) -> list[str]:
    """Insert ``pending`` pending approvals of acme, as many approved ones, and ``pending``
    of globex; returns acme's run ids."""
    now = datetime.now(UTC)
    run_ids = [new_id() for _ in range(100)]
    rows = []
    for org, status, count in (
        ("acme", "pending", pending),
        ("acme", "approved", pending),
        ("globex", "pending", pending),
    ):
        for i in range(count):
            rows.append(
                {
                    "id": new_id(),
                    "organization_slug": org,
                    "run_id": run_ids[i % len(run_ids)],
                    "step_record_id": new_id(),
                    "step_id": "draft",
                    "definition_name": f"def-{i % 10}",
                    "conversation_id": f"c-{i}",
                    "kind": "checkpoint" if i % 5 else "input",
                    "question": f"Publish draft {i}?",
                    "options": ["continue", "retry", "abort"],
                    "status": status,
                    "on_timeout": "abort",
                    "expires_at": now + timedelta(hours=1),
                    "expiring_at": now + timedelta(minutes=48),
                    "expiring_notified": False,
                    "created_at": now - timedelta(seconds=i),
                    "step_output": {"output": {"text": f"draft {i} " + "x" * 200}},
                }
            )

    def tx(conn: sa.Connection) -> None:
        for start in range(0, len(rows), 2000):
            conn.execute(approvals.insert(), rows[start : start + 2000])

    store.db.write(tx)
    with store.db.read() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("ANALYZE human_approvals"))
    return run_ids


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


async def measure(url: str, pending: int) -> None:
    store = SqlStore.open(url)
    try:
        fill(store, pending)
        _, key = store.create_key(organization="acme", role="viewer", name="bench")
        settings = Settings(database_url=url, require_keys=True, rate_limit=1_000_000)
        app = create_app(settings, store=store, worker=False)
        headers = {"Authorization": f"Bearer {key}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            deep = None
            params: dict[str, object] = {"limit": 50}
            for _ in range(40):  # 40 pages in: 2,000 approvals deep
                page = (
                    await client.get(
                        "/api/orchestrations/approvals", params=params, headers=headers
                    )
                ).json()
                deep = page["nextCursor"]
                params = {"limit": 50, "cursor": deep}
            cases = {
                "first page (50)": {"limit": 50},
                "definition + kind": {"definition": "def-3", "kind": "checkpoint"},
                "page 41 (cursor)": {"limit": 50, "cursor": deep},
            }
            for name, query in cases.items():
                timings = []
                for _ in range(REQUESTS):
                    started = time.perf_counter()
                    response = await client.get(
                        "/api/orchestrations/approvals", params=query, headers=headers
                    )
                    timings.append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 200, response.text
                    assert response.json()["items"], name
                print(
                    f"  {name:<22} p50 {statistics.median(timings):7.2f} ms"
                    f"   p95 {percentile(timings, 95):7.2f} ms   max {max(timings):7.2f} ms"
                )
    finally:
        store.close()


def pg_schema_url(base: str) -> tuple[str, sa.Engine, str]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base.replace("postgresql://", "postgresql+psycopg://"))
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}", admin, schema


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--pg", default=PG_DEFAULT)
    parser.add_argument("--pending", type=int, default=10_000)
    args = parser.parse_args()
    if args.only != "postgresql":
        with tempfile.TemporaryDirectory() as tmp:
            print(f"SQLite, {args.pending} pending approvals ({3 * args.pending} rows)")
            asyncio.run(measure(f"sqlite:///{Path(tmp) / 'bench.db'}", args.pending))
    if args.only != "sqlite":
        url, admin, schema = pg_schema_url(args.pg)
        try:
            print(f"PostgreSQL, {args.pending} pending approvals ({3 * args.pending} rows)")
            asyncio.run(measure(url, args.pending))
        finally:
            with admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
