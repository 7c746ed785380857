"""Dashboard benchmark: how fast the pages answer and how fast a change reaches the browser.

    python bench/web.py [--only sqlite|postgresql] [--runs 10000] [--pg URL] [--no-analyze]

On each database, against a real server on loopback (``bench/api.py``'s, with its embedded
worker). On PostgreSQL the tables are analysed once the runs are written, as autovacuum
would have done by then (``--no-analyze``: without planner statistics).

1. **Runs list time to first byte** with ``--runs`` runs in the database, launched straight
   into the store and run to their end by the server's worker (one in ten fails, the rest
   complete), so the list shows what an operator's list shows. 100 requests of ``/`` and
   50 of each filter (status, text search, lifecycle, a keyset page in the middle); p50 and
   p95 of the time until the response's headers arrive (target: p95 under 150 ms at
   10,000 runs). The page is rendered whole before its headers are sent, so this is the
   server's time plus loopback.
2. **Run page of a 100-step DAG** (and a 500-step one), completed, so that every step has
   its input, output and history and the event log is full: the server's time (to first
   byte) over 30 requests (target: under 200 ms), the page's size, and ``DOMContentLoaded``
   in headless Chromium over 10 loads, each in a fresh browser context (cold cache, new
   connection), measured from the start of the navigation (target: under 1 s). Beside these
   wall-clock times, the CPU each page costs (median of 20, served in the benchmark's own
   process), which the shared machine's load does not inflate.
3. **A state change reaching the DOM** (target: p95 under 1 s), two ways:
   - *live*: a run of chained ``sleep`` steps progresses while its page is open; for each
     step, the time from its ``completed`` event to its DAG node showing ``completed``;
   - *retry*: 20 runs whose step failed, each page open in Chromium; a retry through the
     API (as from the CLI or another operator); the time from the ``completed`` event of the
     retried step to its DAG node showing it;
   - *runs list*: 20 runs of one ``sleep`` step, each shown running in the open runs list;
     the time from the run's ``completed`` event to its row showing ``completed``.

   A MutationObserver notes ``Date.now()`` when the node changes (same machine, same clock).
   The event's timestamp is taken when its transaction starts, a little before it commits,
   so these latencies are slight overestimates.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from api import PG_DEFAULT, pg_schema_url, server
from podium.domain.definition import parse_definition
from podium.engine.launcher import launch
from podium.storage.dialects import normalize_url
from podium.storage.store import SqlStore

CHROMIUM = os.environ.get("PODIUM_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
ONE = """
metadata: {name: bench-list, version: 1.0.0}
orchestration:
  steps:
    - {id: a, agent: noop}
"""
ONE_FAILING = """
metadata: {name: bench-list-failing, version: 1.0.0}
orchestration:
  error_handling: {on_step_failure: {maxAttempts: 1}}
  steps:
    - {id: a, agent: reject}
"""
FAILING = """
metadata: {name: bench-retry, version: 1.0.0}
orchestration:
  error_handling: {on_step_failure: {maxAttempts: 1}}
  steps:
    - {id: first, agent: echo, input: {text: one}}
    - {id: shaky, agent: reject, depends_on: [first], input: {text: two}}
"""
ROW = """
metadata: {name: bench-row, version: 1.0.0}
orchestration:
  steps:
    - {id: nap, agent: sleep, input: {seconds: 1.5}}
"""
LIVE_STEPS = 12
TABLES = ("orchestration_runs", "orchestration_steps", "orchestration_events", "human_approvals")


def fan(n: int) -> str:
    """``n`` steps: a root, then layers of ``n // 10`` steps, each depending on one step of
    the layer before."""
    lines = [f"metadata: {{name: bench-dag-{n}, version: 1.0.0}}", "orchestration:", "  steps:"]
    lines.append("    - {id: root, agent: echo, input: {text: root}}")
    width = max(n // 10, 1)
    for i in range(n - 1):
        dep = "root" if i < width else f"s{i - width}"
        lines.append(
            f"    - {{id: s{i}, agent: echo, depends_on: [{dep}], input: {{text: step {i}}}}}"
        )
    return "\n".join(lines)


def chain(n: int) -> str:
    """``n`` chained steps that each take a little while (the first one longer, so that the
    page is open before anything ends)."""
    lines = ["metadata: {name: bench-live, version: 1.0.0}", "orchestration:", "  steps:"]
    lines.append("    - {id: c0, agent: sleep, input: {seconds: 2}}")
    for i in range(1, n):
        lines.append(
            f"    - {{id: c{i}, agent: sleep, depends_on: [c{i - 1}], input: {{seconds: 0.2}}}}"
        )
    return "\n".join(lines)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def summary(values: list[float]) -> str:
    return (
        f"p50 {pct(values, 0.5):.1f} ms, p95 {pct(values, 0.95):.1f} ms, max {max(values):.1f} ms"
    )


def ttfb(client: httpx.Client, path: str, n: int) -> list[float]:
    """Milliseconds until the response's headers arrived, ``n`` times."""
    times = []
    for _ in range(n):
        started = time.perf_counter()
        with client.stream("GET", path) as response:
            times.append((time.perf_counter() - started) * 1000)
            response.read()
            assert response.status_code == 200, response.status_code
    return times


def push(client: httpx.Client, document: str) -> None:
    pushed = client.post(
        "/api/definitions", content=document, headers={"content-type": "application/yaml"}
    )
    pushed.raise_for_status()


def launch_api(client: httpx.Client, definition: str) -> str:
    launched = client.post("/api/orchestrations", json={"definition": definition})
    launched.raise_for_status()
    run_id: str = launched.json()["id"]
    return run_id


def wait_status(client: httpx.Client, run_id: str, wanted: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while (status := client.get(f"/api/orchestrations/{run_id}/status").json()["status"]) != wanted:
        if time.monotonic() > deadline:
            raise SystemExit(f"run {run_id} is {status}, not {wanted}, after {timeout} s")
        time.sleep(0.05)


def wait_idle(client: httpx.Client, timeout: float = 600) -> None:
    """Until no run is active."""
    deadline = time.monotonic() + timeout
    while client.get("/api/orchestrations?lifecycle=active&limit=1").json()["items"]:
        if time.monotonic() > deadline:
            raise SystemExit("the seeded runs did not end in time")
        time.sleep(0.5)


def completed_at(events: list[dict[str, Any]], step_id: str) -> float:
    """Epoch milliseconds of the last ``completed`` event of ``step_id``."""
    done = [
        e for e in events if e["type"] == "orchestration.step.completed" and e["stepId"] == step_id
    ]
    return datetime.fromisoformat(done[-1]["timestamp"]).timestamp() * 1000


async def dom_content_loaded(url: str, path: str, n: int) -> list[float]:
    """``DOMContentLoaded`` (ms from the navigation's start) of ``n`` loads, each in a
    fresh context: nothing cached, a new connection."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        times = []
        for _ in range(n):
            context = await browser.new_context()
            page = await context.new_page()
            await page.goto(url + path, wait_until="domcontentloaded")
            entry = await page.evaluate(
                "performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd"
            )
            times.append(float(entry))
            await context.close()
        await browser.close()
        return times


# Installed in a page: window.shown maps a step id to Date.now() when its DAG node first
# showed "completed" after this point; window.installedAt is when the watch began.
WATCH_NODES = """(steps) => {
  window.shown = {};
  window.installedAt = Date.now();
  for (const step of steps) {
    const node = document.querySelector(`g.node[data-step="${step}"]`);
    if (node.dataset.status === "completed") continue;
    const observer = new MutationObserver(() => {
      if (node.dataset.status === "completed" && !(step in window.shown)) {
        window.shown[step] = Date.now();
        observer.disconnect();
      }
    });
    observer.observe(node, {attributes: true, attributeFilter: ["data-status"]});
  }
}"""


async def wait_shown(page: Any, steps: list[str], within: float = 60) -> dict[str, float]:
    """Poll the page (from outside: the page's CSP forbids Playwright's wait_for_function)
    until every step of ``steps`` was shown completed."""
    deadline = time.monotonic() + within
    while True:
        shown: dict[str, float] = await page.evaluate("window.shown")
        if all(s in shown for s in steps):
            return shown
        if time.monotonic() > deadline:
            raise SystemExit(f"not shown within {within} s: {set(steps) - set(shown)}")
        await asyncio.sleep(0.05)


async def live_to_dom(url: str, runs: int) -> list[float]:
    """Milliseconds from each step's completion to its node showing it, on open pages of
    runs that progress."""
    from playwright.async_api import async_playwright

    steps = [f"c{i}" for i in range(LIVE_STEPS)]
    latencies = []
    async with (
        async_playwright() as p,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for _ in range(runs):
            launched = await client.post("/api/orchestrations", json={"definition": "bench-live"})
            launched.raise_for_status()
            run_id = launched.json()["id"]
            page = await browser.new_page()
            await page.goto(f"{url}/runs/{run_id}")
            await page.evaluate(WATCH_NODES, steps)
            installed = await page.evaluate("window.installedAt")
            shown = await wait_shown(page, steps)
            events = (await client.get(f"/api/orchestrations/{run_id}/events")).json()
            for step in steps:
                committed = completed_at(events, step)
                if committed > installed:  # ended before the watch began: not a live change
                    latencies.append(shown[step] - committed)
            await page.close()
        await browser.close()
    return latencies


WATCH_ROW = """(runId) => {
  const row = document.querySelector(`#runs tr[data-run="${runId}"]`);
  new MutationObserver(() => {
    if (row.dataset.status === "completed" && window.shownAt === undefined) {
      window.shownAt = Date.now();
    }
  }).observe(row, {attributes: true, attributeFilter: ["data-status"]});
}"""


async def list_to_dom(url: str, runs: int) -> list[float]:
    """Milliseconds from a run's completion to its row of the open runs list showing it."""
    from playwright.async_api import async_playwright

    latencies = []
    async with (
        async_playwright() as p,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = await browser.new_page()
        for i in range(runs):
            launched = await client.post("/api/orchestrations", json={"definition": "bench-row"})
            launched.raise_for_status()
            run_id = launched.json()["id"]
            # the page's refreshes fall anywhere relative to the run's end
            await asyncio.sleep((i * 0.37) % 1.0)
            await page.goto(f"{url}/")
            await page.evaluate(WATCH_ROW, run_id)
            deadline = time.monotonic() + 30
            while (shown := await page.evaluate("window.shownAt")) is None:
                if time.monotonic() > deadline:
                    raise SystemExit(f"the runs list never showed {run_id} completed")
                await asyncio.sleep(0.05)
            events = (await client.get(f"/api/orchestrations/{run_id}/events")).json()
            done = next(e for e in events if e["type"] == "orchestration.run.completed")
            latencies.append(shown - datetime.fromisoformat(done["timestamp"]).timestamp() * 1000)
        await browser.close()
    return latencies


async def retry_to_dom(url: str, run_ids: list[str]) -> list[float]:
    """Milliseconds from the commit of step ``shaky``'s completion, after a retry through
    the API, to the DOM of the run's open page showing it."""
    from playwright.async_api import async_playwright

    latencies = []
    async with (
        async_playwright() as p,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for run_id in run_ids:
            page = await browser.new_page()
            await page.goto(f"{url}/runs/{run_id}")
            await page.evaluate(WATCH_NODES, ["shaky"])
            # a page is opened some time before an operator acts elsewhere
            await asyncio.sleep(0.5 + (len(latencies) % 5) * 0.23)
            response = await client.post(
                f"/api/orchestrations/{run_id}/actions/retry",
                json={"modifications": {"agentOverrides": {"shaky": "echo"}}},
            )
            response.raise_for_status()
            shown = await wait_shown(page, ["shaky"], within=30)
            events = (await client.get(f"/api/orchestrations/{run_id}/events")).json()
            latencies.append(shown["shaky"] - completed_at(events, "shaky"))
            await page.close()
        await browser.close()
    return latencies


def seed(url: str, runs: int) -> None:
    """``runs`` runs launched straight into the store (one in ten of a failing definition)."""
    store = SqlStore.open(url)
    one, failing = parse_definition(ONE), parse_definition(ONE_FAILING)
    for i in range(runs):
        launch(store, failing if i % 10 == 9 else one, {}, organization="default")
    store.close()


async def cpu_per_page(url: str, paths: list[str], n: int = 20) -> list[float]:
    """Median milliseconds of CPU (this process, every thread) per request of each path,
    served in this process over ASGI without a worker: the pages' own cost, which the
    machine's other load does not inflate as it does wall-clock times."""
    from podium.api.app import create_app
    from podium.settings import Settings

    store = SqlStore.open(url)
    app = create_app(Settings(database_url=url, rate_limit=10_000_000), store=store, worker=False)
    transport = httpx.ASGITransport(app=app)
    medians = []
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://bench") as client,
    ):
        gc.collect()
        gc.freeze()  # as podium serve does once it listens
        for path in paths:
            for _ in range(3):
                (await client.get(path)).raise_for_status()
            used = []
            for _ in range(n):
                started = time.process_time()
                (await client.get(path)).raise_for_status()
                used.append((time.process_time() - started) * 1000)
            medians.append(statistics.median(used))
    store.close()
    return medians


def analyze(url: str) -> None:
    """What autovacuum would have done by now (it is off on the development machine's
    PostgreSQL): statistics for the planner, after the bulk of writes."""
    engine = sa.create_engine(normalize_url(url))
    with engine.begin() as conn:
        tables = ", ".join(TABLES)
        conn.execute(sa.text(f"ANALYZE {tables}"))
    engine.dispose()


def note(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def bench(label: str, url: str, runs: int, *, statistics_first: bool = True) -> list[str]:
    started = time.monotonic()
    seed(url, runs)
    note(f"{label}: {runs} runs launched in {time.monotonic() - started:.0f} s")
    lines = []
    with server(url) as base, httpx.Client(base_url=base, timeout=60) as client:
        wait_idle(client)
        note(f"{label}: seeded runs ended after {time.monotonic() - started:.0f} s")
        for document in (fan(100), fan(500), FAILING, chain(LIVE_STEPS), ROW):
            push(client, document)
        dags = {n: launch_api(client, f"bench-dag-{n}") for n in (100, 500)}
        for run_id in dags.values():
            wait_status(client, run_id, "completed")
        retries = [launch_api(client, "bench-retry") for _ in range(20)]
        for run_id in retries:
            wait_status(client, run_id, "failed")
        if statistics_first and not url.startswith("sqlite"):
            analyze(url)

        cursor = None  # the cursor of a page half way down the list
        for _ in range(max(runs // 400, 1)):
            query = "limit=200" + (f"&cursor={cursor}" if cursor else "")
            cursor = client.get(f"/api/orchestrations?{query}").json()["nextCursor"]
        variants = {
            "/": 100,
            "/?status=failed": 50,
            "/?search=failing": 50,
            "/?lifecycle=active": 50,
            f"/?cursor={cursor}": 50,
        }
        ttfb(client, "/", 5)  # warm-up
        for path, n in variants.items():
            shown = path if "cursor" not in path else "/?cursor=(a page further on)"
            lines.append(
                f"{label:10}  runs list {shown}, {runs} runs: TTFB {summary(ttfb(client, path, n))}"
            )
        for n, run_id in dags.items():
            path = f"/runs/{run_id}"
            size = len(client.get(path).content)
            server_ms = ttfb(client, path, 30)
            dcl = asyncio.run(dom_content_loaded(base, path, 10))
            lines.append(
                f"{label:10}  run page, {n}-step DAG (completed, {size // 1024} KiB): "
                f"server {summary(server_ms)}; DOMContentLoaded median "
                f"{statistics.median(dcl):.0f} ms, max {max(dcl):.0f} ms"
            )
        pages = ["/", *(f"/runs/{run_id}" for run_id in dags.values())]
        cpu = asyncio.run(cpu_per_page(url, pages))
        lines.append(
            f"{label:10}  CPU per page (in process): runs list {cpu[0]:.1f} ms, "
            f"100-step run {cpu[1]:.1f} ms, 500-step run {cpu[2]:.1f} ms"
        )
        live = asyncio.run(live_to_dom(base, 3))
        lines.append(f"{label:10}  state change to DOM, live run: {summary(live)} (n={len(live)})")
        rows = asyncio.run(list_to_dom(base, 20))
        lines.append(f"{label:10}  state change to DOM, runs list: {summary(rows)} (n={len(rows)})")
        lat = asyncio.run(retry_to_dom(base, retries))
        lines.append(
            f"{label:10}  state change to DOM, retry of a failed run: {summary(lat)} (n={len(lat)})"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--pg", default=os.environ.get("PODIUM_BENCH_DATABASE_URL", PG_DEFAULT))
    parser.add_argument(
        "--no-analyze",
        action="store_true",
        help="measure PostgreSQL without planner statistics (no ANALYZE after the writes)",
    )
    args = parser.parse_args()
    lines: list[str] = []
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            lines += bench("sqlite", f"sqlite:///{Path(tmp) / 'web.db'}", args.runs)
    if args.only in (None, "postgresql"):
        found = pg_schema_url(args.pg)
        if found is not None:
            url, drop = found
            try:
                lines += bench("postgresql", url, args.runs, statistics_first=not args.no_analyze)
            finally:
                drop()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
