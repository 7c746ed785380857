"""API benchmark: ``GET /api/orchestrations/{runId}/status`` at fixed request rates.

Starts a real server (uvicorn serving ``create_app`` with its embedded worker, as
``podium serve`` does) in its own process on a loopback port, on SQLite and, when reachable,
PostgreSQL. It launches a run of 20 chained steps through the API and waits for it to end,
then sends status requests open-loop (each at its scheduled time, whether or not earlier
ones have answered) at each rate for a few seconds, and prints the achieved rate and latency
percentiles. Latency is measured from the scheduled send time, so a server that falls behind
shows it (no coordinated omission).

    python bench/api.py [--rates 100,200,400] [--seconds 5] [--only sqlite|postgresql] [--pg URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import sqlalchemy as sa

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"

# the server `podium serve` runs (AnnouncingServer), here without a banner
SERVER = """
import json, socket, sys
import uvicorn
from podium.api.app import create_app
from podium.cli.uvicorn_server import AnnouncingServer
from podium.settings import Settings

app = create_app(Settings(**json.loads(sys.argv[1])), worker=sys.argv[2] == "worker")
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.bind(("127.0.0.1", 0))
print(sock.getsockname()[1], flush=True)
config = uvicorn.Config(app, log_level="warning", access_log=False)
AnnouncingServer(config, []).run(sockets=[sock])
"""

DEFINITION = "\n".join(
    [
        "metadata: {name: bench-status, version: 1.0.0}",
        "orchestration:",
        "  steps:",
        "    - {id: s0, agent: noop}",
        *(f"    - {{id: s{i}, agent: noop, depends_on: [s{i - 1}]}}" for i in range(1, 20)),
    ]
)


@contextmanager
def server(database_url: str, *, worker: bool = True) -> Iterator[str]:
    """A server process on ``database_url`` (development mode on loopback: no keys, and a
    rate limit far above the benchmark's), with an embedded worker unless ``worker`` is False;
    yields its base URL once healthy."""
    settings = {"database_url": database_url, "rate_limit": 10_000_000}
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, json.dumps(settings), "worker" if worker else "api"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = proc.stdout.readline().strip()
        if not port.isdigit():
            raise SystemExit(f"the server did not start (exit {proc.wait()})")
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("the server did not become healthy")
            time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def finished_run(base: str) -> str:
    """Push the definition, launch a run through the API, wait for its end; its id."""
    with httpx.Client(base_url=base, timeout=30) as client:
        pushed = client.post(
            "/api/definitions", content=DEFINITION, headers={"content-type": "application/yaml"}
        )
        pushed.raise_for_status()
        launched = client.post("/api/orchestrations", json={"definition": "bench-status"})
        launched.raise_for_status()
        run_id: str = launched.json()["id"]
        deadline = time.monotonic() + 60
        while client.get(f"/api/orchestrations/{run_id}/status").json()["status"] != "completed":
            if time.monotonic() > deadline:
                raise SystemExit("the benchmark run did not complete")
            time.sleep(0.05)
        return run_id


@dataclass
class Result:
    rate: int
    achieved: float
    ok: int
    errors: int
    latencies_ms: list[float]

    def row(self, label: str) -> tuple[str, ...]:
        lat = sorted(self.latencies_ms) or [float("nan")]

        def pct(p: float) -> str:
            return f"{lat[min(len(lat) - 1, int(p * len(lat)))]:.1f}"

        return (
            label,
            str(self.rate),
            f"{self.achieved:.0f}",
            str(self.ok),
            str(self.errors),
            pct(0.50),
            pct(0.90),
            pct(0.99),
            f"{lat[-1]:.1f}",
            f"{statistics.fmean(lat):.1f}",
        )


async def drive(url: str, rate: int, seconds: float) -> Result:
    """Send GET ``url`` ``rate`` times a second for ``seconds``, open-loop."""
    count = int(rate * seconds)
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def one(scheduled: float) -> None:
            nonlocal errors
            try:
                response = await client.get(url)
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies.append((time.perf_counter() - scheduled) * 1000)
            else:
                errors += 1

        started = time.perf_counter()
        tasks = []
        for i in range(count):
            scheduled = started + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(scheduled)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    return Result(rate, len(latencies) / elapsed, len(latencies), errors, latencies)


def bench(label: str, database_url: str, rates: list[int], seconds: float) -> list[Result]:
    with server(database_url) as base:
        run_id = finished_run(base)
        url = f"{base}/api/orchestrations/{run_id}/status"
        asyncio.run(drive(url, rates[0], 1.0))  # warm up connections and caches
        results = []
        for rate in rates:
            result = asyncio.run(drive(url, rate, seconds))
            print(f"  {label} {rate} req/s done", file=sys.stderr)
            results.append(result)
        return results


def pg_schema_url(base: str) -> tuple[str, Callable[[], None]] | None:
    """A fresh schema on ``base`` (dropped by the returned function), or None if unreachable."""
    schema = f"bench_api_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:
        print(f"PostgreSQL at {base} is not reachable, skipped: {exc.orig}", file=sys.stderr)
        admin.dispose()
        return None

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}", drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="100,200,400", help="requests per second, in turn")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each rate")
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--pg", default=os.environ.get("PODIUM_BENCH_DATABASE_URL", PG_DEFAULT))
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    rows: list[tuple[str, ...]] = []
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
            rows += [r.row("sqlite") for r in bench("sqlite", url, rates, args.seconds)]
    if args.only in (None, "postgresql"):
        found = pg_schema_url(args.pg)
        if found is not None:
            url, drop = found
            try:
                rows += [r.row("postgresql") for r in bench("postgresql", url, rates, args.seconds)]
            finally:
                drop()
    header = ("db", "req/s", "achieved", "ok", "errors", "p50 ms", "p90 ms", "p99 ms")
    header += ("max ms", "mean ms")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
