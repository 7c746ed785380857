"""Engine benchmark: W1 (a chain of 200 steps), W2 (one root, 500 parallel steps with
maxParallelSteps 50, one join), W3 (200 runs of 5 chained steps), on SQLite and PostgreSQL,
with no-op python agents.

For each workload it prints wall seconds, steps per second and milliseconds per step, and the
floor measured in the same process: the database work a step cannot avoid (one claim and one
completion committed, each with its event row), so that overhead over floor is a ratio.

    python bench/engine.py [--only sqlite|postgresql] [--pg URL] [--webhook outbox|deliver]

``--webhook outbox`` registers one webhook endpoint subscribed to every event (each event
then also writes its delivery row); ``--webhook deliver`` also runs a dispatcher that sends
them to a receiver on loopback while the engine works.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from podium.agents.registry.resolver import LocalAgents
from podium.domain.definition import parse_definition
from podium.domain.ids import new_id
from podium.engine.launcher import launch
from podium.engine.worker import Worker
from podium.settings import Settings
from podium.storage.store import SqlStore
from podium.storage.tables import events, runs, steps

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


def floor_ms(store: SqlStore, samples: int = 300) -> float:
    """Milliseconds of one claim and one completion, each committed with its event row."""
    run_id = launch(store, parse_definition(chain(1, "floor")), {}, organization="bench")
    db = store.db
    now = datetime.now(UTC)
    ids = [new_id() for _ in range(samples)]

    def seed(conn: sa.Connection) -> None:
        conn.execute(
            steps.insert(),
            [
                {
                    "id": sid,
                    "run_id": run_id,
                    "step_id": f"f{i}",
                    "position": i,
                    "type": "agent",
                    "agent": "noop",
                    "status": "queued",
                    "updated_at": now,
                    "queued_at": now,
                    "metadata": {},
                }
                for i, sid in enumerate(ids)
            ],
        )

    db.write(seed)
    seq = [10_000]

    def event(conn: sa.Connection, sid: str, kind: str) -> None:
        seq[0] += 1
        conn.execute(
            events.insert().values(
                id=new_id(),
                run_id=run_id,
                sequence=seq[0],
                type=kind,
                organization_slug="bench",
                timestamp=datetime.now(UTC),
                step_id=sid,
                step_record_id=sid,
                data={},
            )
        )

    def claim(conn: sa.Connection, sid: str) -> None:
        conn.execute(
            steps.update()
            .where(steps.c.id == sid, steps.c.status == "queued")
            .values(status="running", lease_owner="w", updated_at=datetime.now(UTC))
            .returning(steps.c.id)
        ).one()
        event(conn, sid, "orchestration.step.running")

    def complete(conn: sa.Connection, sid: str) -> None:
        conn.execute(
            steps.update()
            .where(steps.c.id == sid, steps.c.status == "running")
            .values(status="completed", output={}, updated_at=datetime.now(UTC))
        )
        event(conn, sid, "orchestration.step.completed")

    def one(sid: str) -> None:
        db.write(lambda c: claim(c, sid))
        db.write(lambda c: complete(c, sid))

    for sid in ids[:20]:  # warm up
        one(sid)
    started = time.perf_counter()
    for sid in ids[20:]:
        one(sid)
    per_step = (time.perf_counter() - started) / (samples - 20) * 1000
    db.write(
        lambda c: c.execute(runs.update().where(runs.c.id == run_id).values(status="completed"))
    )
    return per_step


async def bench(label: str, url: str, repeat: int, webhook: str = "none") -> list[tuple[str, ...]]:
    store = SqlStore.open(url)
    dispatching = await with_webhook(store, webhook)
    settings = Settings(database_url=url, worker_concurrency=64, poll_seconds=1.0)
    floor = floor_ms(store)
    workloads: list[tuple[str, Callable[[int], list[str]], int]] = [
        ("W1 chain 200", lambda k: [chain(200, f"w1-{k}")], 200),
        ("W2 fan 500/50", lambda k: [fan(500)], 502),
        ("W3 200 runs x 5", lambda k: [chain(5, f"w3-{k}") for _ in range(200)], 1000),
    ]
    rows = []
    for name, make, n_steps in workloads:
        walls = [await run_workload(store, settings, make(k)) for k in range(repeat)]
        wall = statistics.median(walls)
        ms = wall / n_steps * 1000
        rows.append(
            (
                label,
                name,
                f"{wall:.3f}",
                f"{n_steps / wall:.0f}",
                f"{ms:.3f}",
                f"{floor:.3f}",
                f"{ms / floor:.2f}x",
            )
        )
    if dispatching is not None:
        await dispatching.close()
    store.close()
    return rows


async def with_webhook(store: SqlStore, mode: str) -> Any:
    """One endpoint subscribed to everything (``outbox``), and a dispatcher (``deliver``)."""
    if mode == "none":
        return None
    import importlib.util

    from podium.events.webhooks.dispatcher import Dispatcher, DispatcherTask
    from podium.events.webhooks.signing import new_secret
    from podium.net.urlguard import UrlGuard
    from podium.storage.webhooks import WebhookStore

    spec = importlib.util.spec_from_file_location(
        "bench_webhooks", Path(__file__).with_name("webhooks.py")
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    webhooks = WebhookStore(store.db)
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
    parser.add_argument("--pg", default=os.environ.get("PODIUM_BENCH_DATABASE_URL", PG_DEFAULT))
    parser.add_argument("--repeat", type=int, default=3, help="median of this many runs")
    parser.add_argument("--webhook", choices=["none", "outbox", "deliver"], default="none")
    args = parser.parse_args()
    rows: list[tuple[str, ...]] = []
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            rows += asyncio.run(
                bench("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}", args.repeat, args.webhook)
            )
    if args.only in (None, "postgresql"):
        url, drop = pg_schema_url(args.pg)
        try:
            rows += asyncio.run(bench("postgresql", url, args.repeat, args.webhook))
        finally:
            drop()
    header = ("db", "workload", "wall s", "steps/s", "ms/step", "floor ms", "over floor")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
