"""Webhook benchmark: latency from an event's commit to the first delivery attempt reaching a
real receiver on loopback, at a steady 50 events/s spread over 10 runs, on SQLite and
PostgreSQL (targets: p95 < 1 s on SQLite, < 500 ms on PostgreSQL).

One endpoint subscribes to every event; a dispatcher runs in this process (as beside the
embedded worker of ``podium serve``); events are written by RunTx transactions, like the
engine's.

    python bench/webhooks.py [--only sqlite|postgresql] [--pg URL] [--seconds 20] [--rate 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import uvicorn

from podium.domain.definition import parse_definition
from podium.domain.events import EventType
from podium.engine.launcher import launch
from podium.events.webhooks.config import WebhookSettings
from podium.events.webhooks.dispatcher import Dispatcher
from podium.events.webhooks.signing import new_secret
from podium.net.urlguard import UrlGuard
from podium.storage.runtx import lock_run
from podium.storage.store import SqlStore, utcnow
from podium.storage.webhooks import WebhookStore

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
RUNS = 10
DEFINITION = """
metadata: {name: bench-webhooks, version: 1.0.0}
orchestration:
  steps:
    - {id: s0, agent: noop}
"""


class Receiver:
    """Records when each webhook-id first arrived (wall clock)."""

    def __init__(self) -> None:
        self.first: dict[str, float] = {}
        self.lock = threading.Lock()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        arrived = time.time()
        while (await receive()).get("more_body"):
            pass
        webhook_id = dict(scope["headers"]).get(b"webhook-id", b"").decode()
        with self.lock:
            self.first.setdefault(webhook_id, arrived)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def serve(app: Receiver) -> tuple[str, uvicorn.Server]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="error", lifespan="off")  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{sock.getsockname()[1]}/hook", server


async def bench(label: str, url: str, seconds: float, rate: float) -> tuple[str, ...]:
    store = SqlStore.open(url)
    webhooks = WebhookStore(store.db)
    receiver = Receiver()
    hook_url, server = serve(receiver)
    webhooks.create_endpoint(organization="bench", url=hook_url, secret=new_secret())
    defn = parse_definition(DEFINITION)
    run_ids = [launch(store, defn, {}, organization="bench") for _ in range(RUNS)]
    settings = WebhookSettings(poll_seconds=1.0)
    dispatcher = Dispatcher(webhooks, settings, guard=UrlGuard.allowing_loopback())
    task = asyncio.create_task(dispatcher.run())
    committed: dict[str, float] = {}

    def write_one(i: int) -> None:
        def tx(conn: sa.Connection) -> str:
            rtx = lock_run(conn, run_ids[i % RUNS], utcnow(), skip_locked=store.skip_locked)
            rtx.emit(EventType.RUN_UPDATED, {"benchmark": i})
            event_id: str = rtx._events[-1]["id"]  # the id this transaction commits
            rtx.close()
            return event_id

        event_id = store.db.write(tx)
        committed[event_id] = time.time()

    await asyncio.sleep(1.0)  # the launch's own deliveries go out first
    total = int(seconds * rate)
    start = time.perf_counter()
    writes = []
    loop = asyncio.get_running_loop()
    # writers of their own: queued writes must not delay the dispatcher's transactions
    pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="bench-writer")
    for i in range(total):  # each write starts on schedule, whether or not the last one ended
        writes.append(loop.run_in_executor(pool, write_one, i))
        delay = start + (i + 1) / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    await asyncio.gather(*writes)
    pool.shutdown()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(e in receiver.first for e in committed):  # noqa: ASYNC110  # polls a dict filled by another thread
        await asyncio.sleep(0.05)
    dispatcher.stop()
    await task
    server.should_exit = True
    store.close()
    latencies = sorted(
        (receiver.first[e] - t) * 1000 for e, t in committed.items() if e in receiver.first
    )
    missing = len(committed) - len(latencies)
    q = statistics.quantiles(latencies, n=100)
    return (
        label,
        str(len(committed)),
        f"{total / (time.perf_counter() - start):.1f}",
        f"{statistics.median(latencies):.0f}",
        f"{q[94]:.0f}",
        f"{q[98]:.0f}",
        f"{latencies[-1]:.0f}",
        str(missing),
    )


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
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=50.0, help="events per second")
    args = parser.parse_args()
    rows: list[tuple[str, ...]] = []
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
            rows.append(asyncio.run(bench("sqlite", url, args.seconds, args.rate)))
    if args.only in (None, "postgresql"):
        url, drop = pg_schema_url(args.pg)
        try:
            rows.append(asyncio.run(bench("postgresql", url, args.seconds, args.rate)))
        finally:
            drop()
    header = ("db", "events", "events/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "missing")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
