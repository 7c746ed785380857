"""Webhook benchmark: latency from an event's commit to the first delivery attempt reaching a
real receiver on loopback, at a steady 50 events/s spread over 10 runs, on SQLite and
PostgreSQL (targets: p95 < 1 s on SQLite, < 500 ms on PostgreSQL).

One endpoint subscribes to every event. The dispatcher runs in this process, beside the
writers, as it runs beside the embedded worker of ``podium serve``; events are written by
RunTx transactions, like the engine's, each started on schedule from a pool of writer
threads. The receiver is a separate process (uvicorn on loopback) that notes when each
``webhook-id`` first arrived, so that it takes no CPU from the process it measures.

    python bench/webhooks.py [--only sqlite|postgresql] [--pg URL] [--seconds 20] [--rate 50]
                             [--runs 10] [--repeat 3]

Columns: ``events`` committed during the window, ``events/s`` the rate actually committed
(first to last commit), ``lag p95`` how late the writes committed against their schedule,
``p50/p95/p99/max`` commit -> first attempt (an event never delivered counts as infinitely
late, so the percentiles include it), ``p95 end`` the same over the last quarter of the
window (a dispatcher that falls behind shows it growing), ``backlog`` the unsettled
deliveries when the last write committed, ``drain s`` from the last commit until every
event had arrived, ``cpu ms/ev`` this process's CPU time (writers and dispatcher) per event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

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
DEFINITION = """
metadata: {name: bench-webhooks, version: 1.0.0}
orchestration:
  steps:
    - {id: s0, agent: noop}
"""
WRITER_THREADS = 8
DRAIN_SECONDS = 60.0


class Receiver:
    """Records when each webhook-id first arrived (wall clock); ``GET /results`` answers
    ``{"requests": n, "first": {id: time}}`` and ``GET /count`` the counts alone."""

    def __init__(self) -> None:
        self.first: dict[str, float] = {}
        self.requests = 0
        self.lock = threading.Lock()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        arrived = time.time()
        while (await receive()).get("more_body"):
            pass
        if scope["method"] == "GET":
            with self.lock:
                answer: dict[str, Any] = {"requests": self.requests, "unique": len(self.first)}
                if scope["path"] == "/results":
                    answer["first"] = dict(self.first)
            body = json.dumps(answer).encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})
            return
        webhook_id = dict(scope["headers"]).get(b"webhook-id", b"").decode()
        with self.lock:
            self.requests += 1
            self.first.setdefault(webhook_id, arrived)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def serve(app: Receiver) -> tuple[str, uvicorn.Server]:
    """Run ``app`` in a thread of this process (``bench/engine.py --webhook``)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="error", lifespan="off")  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{sock.getsockname()[1]}/hook", server


class ReceiverProcess:
    """The receiver in a process of its own (``python bench/webhooks.py --receiver``)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--receiver"],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        assert self.proc.stdout is not None
        port = int(self.proc.stdout.readline())
        self.base = f"http://127.0.0.1:{port}"
        self.url = f"{self.base}/hook"
        deadline = time.monotonic() + 30
        while True:  # the port is bound before uvicorn listens on it
            try:
                self.get("/count")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def get(self, path: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.base}{path}", timeout=30) as r:  # noqa: S310  # loopback
            answer: dict[str, Any] = json.load(r)
            return answer

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def receiver_main() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(Receiver(), log_level="error", lifespan="off")  # type: ignore[arg-type]
    uvicorn.Server(config).run(sockets=[sock])


class Round(NamedTuple):
    """One database's round (a NamedTuple: ``bench/engine.py`` loads this file unregistered,
    where a dataclass cannot resolve its module)."""

    label: str
    events: int
    rate: float
    lag_p95_ms: float
    latencies_ms: list[float]  # sorted; math.inf for an event that never arrived
    p95_end_ms: float
    backlog: int
    drain_s: float
    cpu_ms_per_event: float
    load: tuple[float, float]
    duplicates: int

    def cells(self) -> tuple[str, ...]:
        lat = self.latencies_ms
        return (
            self.label,
            str(self.events),
            f"{self.rate:.1f}",
            f"{self.lag_p95_ms:.0f}",
            ms(percentile(lat, 50)),
            ms(percentile(lat, 95)),
            ms(percentile(lat, 99)),
            ms(lat[-1]),
            ms(self.p95_end_ms),
            str(self.backlog),
            f"{self.drain_s:.2f}",
            f"{self.cpu_ms_per_event:.1f}",
            str(len([x for x in lat if math.isinf(x)])),
            f"{self.load[0]:.1f}/{self.load[1]:.1f}",
        )


HEADER = (
    "db",
    "events",
    "events/s",
    "lag p95",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "max ms",
    "p95 end",
    "backlog",
    "drain s",
    "cpu ms/ev",
    "missing",
    "load 1m",
)


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile of sorted ``values``."""
    if not values:
        return math.nan
    return values[max(0, math.ceil(p / 100 * len(values)) - 1)]


def ms(value: float) -> str:
    return "never" if math.isinf(value) else f"{value:.0f}"


async def bench(label: str, url: str, seconds: float, rate: float, runs: int) -> Round:
    store = SqlStore.open(url)
    webhooks = WebhookStore(store.db)
    receiver = ReceiverProcess()
    try:
        return await _measure(label, store, webhooks, receiver, seconds, rate, runs)
    finally:
        receiver.close()
        store.close()


async def _measure(
    label: str,
    store: SqlStore,
    webhooks: WebhookStore,
    receiver: ReceiverProcess,
    seconds: float,
    rate: float,
    runs: int,
) -> Round:
    webhooks.create_endpoint(organization="bench", url=receiver.url, secret=new_secret())
    defn = parse_definition(DEFINITION)
    run_ids = [launch(store, defn, {}, organization="bench") for _ in range(runs)]
    dispatcher = Dispatcher(webhooks, WebhookSettings(), guard=UrlGuard.allowing_loopback())
    task = asyncio.create_task(dispatcher.run())
    committed: dict[str, tuple[float, float]] = {}  # event id -> (scheduled, committed)

    def write_one(i: int, scheduled: float) -> None:
        def tx(conn: sa.Connection) -> str:
            rtx = lock_run(conn, run_ids[i % runs], utcnow(), skip_locked=store.skip_locked)
            rtx.emit(EventType.RUN_UPDATED, {"benchmark": i})
            event_id: str = rtx._events[-1]["id"]  # the id this transaction commits
            rtx.close()
            return event_id

        event_id = store.db.write(tx)
        committed[event_id] = (scheduled, time.time())  # after the commit returned

    warmup = await _wait_arrived(receiver, len(webhooks.list_deliveries(None, limit=10_000)))
    assert warmup, "the launches' own deliveries did not arrive"
    total = int(seconds * rate)
    loop = asyncio.get_running_loop()
    # writers of their own: queued writes must not delay the dispatcher's transactions
    pool = ThreadPoolExecutor(max_workers=WRITER_THREADS, thread_name_prefix="bench-writer")
    load_before = os.getloadavg()[0]
    cpu_before = time.process_time()
    start_wall, start = time.time(), time.perf_counter()
    writes = []
    for i in range(total):  # each write starts on schedule, whether or not the last one ended
        writes.append(loop.run_in_executor(pool, write_one, i, start_wall + i / rate))
        delay = start + (i + 1) / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    await asyncio.gather(*writes)
    cpu_writing = time.process_time() - cpu_before
    pool.shutdown()
    counts = await asyncio.to_thread(webhooks.status_counts)
    backlog = sum(n for status, n in counts.items() if status not in ("delivered", "dead"))
    last_commit = max(c for _, c in committed.values())
    expected = sum(counts.values())
    await _wait_arrived(receiver, expected, DRAIN_SECONDS)
    drained = time.time() - last_commit
    results = await asyncio.to_thread(receiver.get, "/results")
    dispatcher.stop()
    await task
    first: dict[str, float] = results["first"]
    commits = sorted(c for _, c in committed.values())
    latencies = sorted(
        (first[e] - c) * 1000 if e in first else math.inf for e, (_, c) in committed.items()
    )
    end_from = commits[0] + 0.75 * (commits[-1] - commits[0])
    end = sorted(
        (first[e] - c) * 1000 if e in first else math.inf
        for e, (_, c) in committed.items()
        if c >= end_from
    )
    return Round(
        label=label,
        events=len(committed),
        rate=(len(commits) - 1) / (commits[-1] - commits[0]),
        lag_p95_ms=percentile(sorted((c - s) * 1000 for s, c in committed.values()), 95),
        latencies_ms=latencies,
        p95_end_ms=percentile(end, 95),
        backlog=backlog,
        drain_s=drained,
        cpu_ms_per_event=cpu_writing * 1000 / len(committed),
        load=(load_before, os.getloadavg()[0]),
        duplicates=results["requests"] - results["unique"],
    )


async def _wait_arrived(receiver: ReceiverProcess, count: int, within: float = 30.0) -> bool:
    """Wait until the receiver has seen ``count`` distinct webhook-ids."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if (await asyncio.to_thread(receiver.get, "/count"))["unique"] >= count:
            return True
        await asyncio.sleep(0.05)
    return False


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


def one_round(db: str, args: argparse.Namespace) -> Round:
    if db == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
            return asyncio.run(bench(db, url, args.seconds, args.rate, args.runs))
    url, drop = pg_schema_url(args.pg)
    try:
        return asyncio.run(bench(db, url, args.seconds, args.rate, args.runs))
    finally:
        drop()


def median_row(label: str, rounds: list[Round]) -> tuple[str, ...]:
    """The median of each column over ``rounds`` (each column on its own)."""
    columns = list(zip(*(r.cells() for r in rounds), strict=True))
    out = [label]
    for cells in columns[1:-1]:
        values = [math.inf if c == "never" else float(c) for c in cells]
        value = statistics.median(values)
        digits = max((len(c.split(".")[1]) for c in cells if "." in c), default=0)
        out.append("never" if math.isinf(value) else f"{value:.{digits}f}")
    out.append("")
    return tuple(out)


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--pg", default=os.environ.get("PODIUM_BENCH_DATABASE_URL", PG_DEFAULT))
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=50.0, help="events per second")
    parser.add_argument("--runs", type=int, default=10, help="runs the events spread over")
    parser.add_argument("--repeat", type=int, default=1, help="rounds per database")
    parser.add_argument("--receiver", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        receiver_main()
        return
    rows: list[tuple[str, ...]] = [HEADER]
    for db in ("sqlite", "postgresql"):
        if args.only not in (None, db):
            continue
        rounds = []
        for _ in range(args.repeat):
            rounds.append(one_round(db, args))
            rows.append(rounds[-1].cells())
            print(table([HEADER, rows[-1]]).splitlines()[-1], file=sys.stderr, flush=True)
            if rounds[-1].duplicates:
                print(f"{db}: {rounds[-1].duplicates} repeated request(s)", file=sys.stderr)
        if args.repeat > 1:
            rows.append(median_row(f"{db} median", rounds))
    print(table(rows))


if __name__ == "__main__":
    main()
