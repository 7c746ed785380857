"""Engine benchmark: W1 (a chain of 200 steps), W2 (one root, 500 parallel steps with
maxParallelSteps 50, one join), W3 (200 runs of 5 chained steps), on SQLite and PostgreSQL,
with no-op python agents.

For each workload it prints wall seconds, steps per second and milliseconds per step, as a
ratio to the raw driver floor measured in the same process (the figures of this machine drift
by 2x between hours; the ratios are what count):

- SQLite: stdlib ``sqlite3`` with Podium's pragmas, one transaction per step that completes
  it and claims the next, each with its event row;
- PostgreSQL: one small psycopg transaction committed (``synchronous_commit=on``); the floor's
  step transaction is printed too.

    python bench/engine.py [--only sqlite|postgresql] [--workload W1 ...] [--repeat N]
                           [--json] [--pg URL] [--webhook outbox|deliver]

``--webhook outbox`` registers one webhook endpoint subscribed to every event (each event
then also writes its delivery row); ``--webhook deliver`` also runs a dispatcher that sends
them to a receiver on loopback while the engine works.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa

from podium.agents.registry.resolver import LocalAgents
from podium.domain.definition import parse_definition
from podium.domain.ids import new_id
from podium.engine.launcher import launch
from podium.engine.worker import Worker
from podium.settings import Settings
from podium.storage.store import SqlStore
from podium.storage.tables import runs

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"


def chain(n: int, name: str) -> str:
    lines = [
        f"metadata: {{name: {name}, version: 1.0.0}}",
        "orchestration:",
        "  execution: {concurrency: {maxParallelSteps: 50}}",
        "  steps:",
    ]
    for i in range(n):
        dep = f", depends_on: [s{i - 1}]" if i else ""
        lines.append(f"    - {{id: s{i}, agent: noop{dep}}}")
    return "\n".join(lines)


def fan(n: int) -> str:
    lines = [
        "metadata: {name: w2-fan, version: 1.0.0}",
        "orchestration:",
        "  execution: {concurrency: {maxParallelSteps: 50}}",
        "  steps:",
        "    - {id: root, agent: noop}",
    ]
    lines += [f"    - {{id: p{i}, agent: noop, depends_on: [root]}}" for i in range(n)]
    deps = ", ".join(f"p{i}" for i in range(n))
    lines.append(f"    - {{id: join, agent: noop, depends_on: [{deps}]}}")
    return "\n".join(lines)


async def run_workload(store: SqlStore, settings: Settings, docs: list[str]) -> float:
    """Launch every document and run them all to the end; return wall seconds."""
    definitions = [parse_definition(d) for d in docs]
    worker = Worker(store, LocalAgents(), settings)
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(0.2)  # let the worker register and go idle: start from a cold queue
    started = time.perf_counter()
    run_ids = [
        await asyncio.to_thread(launch, store, d, {}, organization="bench") for d in definitions
    ]
    unfinished = (
        sa.select(sa.func.count())
        .select_from(runs)
        .where(runs.c.id.in_(run_ids), runs.c.status.not_in(["completed", "failed", "aborted"]))
    )

    def remaining() -> int:
        with store.db.read() as conn:
            return int(conn.execute(unfinished).scalar_one())

    # runs announce their end to local listeners; check the count on each announcement
    loop = asyncio.get_running_loop()
    ended = asyncio.Event()

    def listener(payload: str) -> None:
        if payload.startswith("run:"):  # a run changed status (events wake streams only)
            loop.call_soon_threadsafe(ended.set)

    store.add_listener(listener)
    while await asyncio.to_thread(remaining):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ended.wait(), 1.0)
        ended.clear()
    store.remove_listener(listener)
    wall = time.perf_counter() - started
    statuses = {store.get_run(r).status for r in run_ids}
    worker.stop()
    await task
    if statuses != {"completed"}:
        raise SystemExit(f"benchmark runs ended {statuses}")
    return wall


def sqlite_floor_ms(path: str, samples: int = 2000) -> float:
    """The raw driver floor on SQLite: stdlib ``sqlite3`` with Podium's pragmas (WAL,
    ``synchronous=NORMAL``), one ``BEGIN IMMEDIATE`` transaction per step that completes the
    step and claims the next one, each with its event row."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.executescript(FLOOR_SCHEMA)
    conn.executemany(
        "INSERT INTO f_steps (id, status, output, updated_at) VALUES (?, 'queued', NULL, ?)",
        [(f"s{i}", time.time()) for i in range(samples + 1)],
    )
    conn.execute("UPDATE f_steps SET status = 'running' WHERE id = 's0'")

    def one(i: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "UPDATE f_steps SET status = 'completed', output = ?, updated_at = ? "
            "WHERE id = ? AND status = 'running'",
            ('{"ok": true}', time.time(), f"s{i}"),
        )
        conn.execute(FLOOR_EVENT, (new_id(), 2 * i + 1, "orchestration.step.completed", "{}"))
        conn.execute(
            "UPDATE f_steps SET status = 'running', updated_at = ? "
            "WHERE id = ? AND status = 'queued'",
            (time.time(), f"s{i + 1}"),
        )
        conn.execute(FLOOR_EVENT, (new_id(), 2 * i + 2, "orchestration.step.running", "{}"))
        conn.execute("COMMIT")

    return _time_per_call(one, samples, conn.close)


def postgresql_floor_ms(url: str, samples: int = 600) -> tuple[float, float]:
    """The raw driver floors on PostgreSQL (``synchronous_commit=on``), with psycopg:

    - one small transaction committed (one ``UPDATE`` and ``COMMIT``): the commit floor;
    - the SQLite floor's transaction (complete a step, claim the next, two event rows).
    """
    conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
    with conn.cursor() as cur:
        cur.execute(FLOOR_SCHEMA)
        cur.execute("SHOW synchronous_commit")
        setting = cur.fetchone()
        if setting is None or setting[0] != "on":
            raise SystemExit(f"synchronous_commit is {setting}; the floor needs it on")
        cur.executemany(
            "INSERT INTO f_steps (id, status, output, updated_at) VALUES (%s, 'queued', NULL, %s)",
            [(f"s{i}", time.time()) for i in range(samples + 1)],
        )
        cur.execute("UPDATE f_steps SET status = 'running' WHERE id = 's0'")
    conn.commit()
    cur = conn.cursor()

    def commit_only(i: int) -> None:
        cur.execute("UPDATE f_steps SET updated_at = %s WHERE id = %s", (time.time(), f"s{i}"))
        conn.commit()

    def step_tx(i: int) -> None:
        cur.execute(
            "UPDATE f_steps SET status = 'completed', output = %s, updated_at = %s "
            "WHERE id = %s AND status = 'running'",
            ('{"ok": true}', time.time(), f"s{i}"),
        )
        cur.execute(
            FLOOR_EVENT.replace("?", "%s"),
            (new_id(), 2 * i + 1, "orchestration.step.completed", "{}"),
        )
        cur.execute(
            "UPDATE f_steps SET status = 'running', updated_at = %s "
            "WHERE id = %s AND status = 'queued'",
            (time.time(), f"s{i + 1}"),
        )
        cur.execute(
            FLOOR_EVENT.replace("?", "%s"),
            (new_id(), 2 * i + 2, "orchestration.step.running", "{}"),
        )
        conn.commit()

    commit = _time_per_call(commit_only, samples, lambda: None)
    step = _time_per_call(step_tx, samples, conn.close)
    return commit, step


# the rows a step's transaction touches, reduced to what the floor needs
FLOOR_SCHEMA = """
CREATE TABLE IF NOT EXISTS f_steps (
    id TEXT PRIMARY KEY, status TEXT NOT NULL, output TEXT, updated_at DOUBLE PRECISION
);
CREATE TABLE IF NOT EXISTS f_events (
    id TEXT PRIMARY KEY, run_id TEXT NOT NULL, sequence INTEGER NOT NULL, type TEXT NOT NULL,
    data TEXT NOT NULL, UNIQUE (run_id, sequence)
);
"""
FLOOR_EVENT = "INSERT INTO f_events (id, run_id, sequence, type, data) VALUES (?, 'r', ?, ?, ?)"


def _time_per_call(fn: Callable[[int], None], samples: int, close: Callable[[], None]) -> float:
    """Milliseconds per call of ``fn(i)`` after a warm-up of a tenth of the samples."""
    warm = samples // 10
    for i in range(warm):
        fn(i)
    started = time.perf_counter()
    for i in range(warm, samples):
        fn(i)
    per_call = (time.perf_counter() - started) / (samples - warm) * 1000
    close()
    return per_call


WORKLOADS: dict[str, tuple[str, Callable[[int], list[str]], int]] = {
    "W1": ("W1 chain 200", lambda k: [chain(200, f"w1-{k}")], 200),
    "W2": ("W2 fan 500/50", lambda k: [fan(500)], 502),
    "W3": ("W3 200 runs x 5", lambda k: [chain(5, f"w3-{k}") for _ in range(200)], 1000),
}


def floors(label: str, url: str, tmp: Path) -> dict[str, float]:
    """The raw driver floors of this database, in milliseconds (see the functions)."""
    if label == "sqlite":
        return {"floor": sqlite_floor_ms(str(tmp / "floor.db"))}
    commit, step_tx = postgresql_floor_ms(url)
    return {"floor": commit, "step_tx": step_tx}


async def bench(
    label: str,
    url: str,
    repeat: int,
    only: list[str],
    tmp: Path,
    *,
    with_floor: bool = True,
    webhook: str = "none",
) -> list[dict[str, Any]]:
    """Run the chosen workloads ``repeat`` times on ``url``; one result row per workload."""
    floor = floors(label, url, tmp) if with_floor else {"floor": float("nan")}
    store = SqlStore.open(url)
    dispatching = await with_webhook(store, webhook)
    settings = Settings(database_url=url, worker_concurrency=64, poll_seconds=1.0)
    rows = []
    for key in only:
        name, make, n_steps = WORKLOADS[key]
        walls = [await run_workload(store, settings, make(k)) for k in range(repeat)]
        wall = statistics.median(walls)
        rows.append(
            {
                "db": label,
                "workload": key,
                "name": name,
                "wall_s": wall,
                "steps": n_steps,
                "ms_per_step": wall / n_steps * 1000,
                **{f"{k}_ms": v for k, v in floor.items()},
            }
        )
    if dispatching is not None:
        await dispatching.close()
    store.close()
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """The human table: each workload as a ratio to its database's driver floor."""
    header = ("db", "workload", "wall s", "steps/s", "ms/step", "floor ms", "x floor")
    cells = [header]
    for r in rows:
        cells.append(
            (
                r["db"],
                r["name"],
                f"{r['wall_s']:.3f}",
                f"{r['steps'] / r['wall_s']:.0f}",
                f"{r['ms_per_step']:.3f}",
                f"{r['floor_ms']:.3f}",
                f"{r['ms_per_step'] / r['floor_ms']:.2f}x",
            )
        )
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(c, widths, strict=True)) for c in cells
    )


async def with_webhook(store: SqlStore, mode: str) -> Any:
    """One endpoint subscribed to everything (``outbox``), and a dispatcher (``deliver``)."""
    if mode == "none":
        return None
    import importlib.util

    from podium.events.webhooks.dispatcher import Dispatcher, DispatcherTask
    from podium.events.webhooks.signing import new_secret
    from podium.net.urlguard import UrlGuard

    spec = importlib.util.spec_from_file_location(
        "bench_webhooks", Path(__file__).with_name("webhooks.py")
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    webhooks = store.webhooks
    hook_url, _server = module.serve(module.Receiver())
    webhooks.create_endpoint(organization="bench", url=hook_url, secret=new_secret())
    if mode == "outbox":
        return None
    dispatcher = Dispatcher(webhooks, guard=UrlGuard.allowing_loopback())
    running = DispatcherTask(dispatcher)
    running._task = asyncio.create_task(dispatcher.run())
    return running


def pg_schema_url(base: str) -> tuple[str, Callable[[], None]]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base.replace("postgresql://", "postgresql+psycopg://"))
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}", drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--workload", action="append", choices=sorted(WORKLOADS))
    parser.add_argument("--pg", default=os.environ.get("PODIUM_BENCH_DATABASE_URL", PG_DEFAULT))
    parser.add_argument("--repeat", type=int, default=3, help="median of this many runs")
    parser.add_argument("--json", action="store_true", help="one JSON object per row")
    parser.add_argument("--no-floor", action="store_true", help="skip the floors (bench/peers)")
    parser.add_argument(
        "--webhook",
        choices=["none", "outbox", "deliver"],
        default="none",
        help="outbox: one endpoint subscribed to every event; deliver: also send them",
    )
    args = parser.parse_args()
    only = args.workload or sorted(WORKLOADS)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        if args.only in (None, "sqlite"):
            rows += asyncio.run(
                bench(
                    "sqlite",
                    f"sqlite:///{tmp / 'bench.db'}",
                    args.repeat,
                    only,
                    tmp,
                    with_floor=not args.no_floor,
                    webhook=args.webhook,
                )
            )
        if args.only in (None, "postgresql"):
            url, drop = pg_schema_url(args.pg)
            try:
                rows += asyncio.run(
                    bench(
                        "postgresql",
                        url,
                        args.repeat,
                        only,
                        tmp,
                        with_floor=not args.no_floor,
                        webhook=args.webhook,
                    )
                )
            finally:
                drop()
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        print(table(rows))
        pg = [r for r in rows if r["db"] == "postgresql"]
        if pg and "step_tx_ms" in pg[0]:
            print(
                f"postgresql: one commit {pg[0]['floor_ms']:.3f} ms; the floor's step "
                f"transaction {pg[0]['step_tx_ms']:.3f} ms"
            )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
