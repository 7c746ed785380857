"""Dashboard benchmark: how fast the pages answer and how fast a change reaches the browser.

    python bench/web.py [--only sqlite|postgresql] [--runs 10000] [--pg URL]

On each database, against a real server on loopback (``bench/api.py``'s):

1. **Runs list time to first byte** with ``--runs`` runs in the database (launched straight
   into the store, no worker): 100 requests of ``/``, p50 and p95 of the time until the
   response's headers arrive (target: p95 under 150 ms at 10,000 runs).
2. **Run page of a 100-step DAG** (and a 500-step one): server render time over 30 requests
   (target: under 200 ms), and ``DOMContentLoaded`` in headless Chromium (target: under 1 s).
3. **A state change reaching the DOM**: 20 runs whose step failed, each page open in Chromium;
   a retry through the API; the time from the commit of the step's ``completed`` event to the
   browser's DOM showing it (a MutationObserver notes ``Date.now()``; same machine, same
   clock). p50 and p95 (target: p95 under 1 s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx

from api import PG_DEFAULT, pg_schema_url, server
from podium.domain.definition import parse_definition
from podium.engine.launcher import launch
from podium.storage.store import SqlStore

CHROMIUM = os.environ.get("PODIUM_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
ONE = """
metadata: {name: bench-list, version: 1.0.0}
orchestration:
  steps:
    - {id: a, agent: noop}
"""
FAILING = """
metadata: {name: bench-retry, version: 1.0.0}
orchestration:
  error_handling: {on_step_failure: {maxAttempts: 1}}
  steps:
    - {id: first, agent: echo, input: {text: one}}
    - {id: shaky, agent: reject, depends_on: [first], input: {text: two}}
"""


def fan(n: int) -> str:
    lines = [f"metadata: {{name: bench-dag-{n}, version: 1.0.0}}", "orchestration:", "  steps:"]
    lines.append("    - {id: root, agent: noop}")
    width = max(n // 10, 1)
    for i in range(n - 1):
        dep = "root" if i < width else f"s{i - width}"
        lines.append(f"    - {{id: s{i}, agent: noop, depends_on: [{dep}]}}")
    return "\n".join(lines)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def ttfb(client: httpx.Client, path: str, n: int) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        with client.stream("GET", path) as response:
            times.append((time.perf_counter() - started) * 1000)
            response.read()
            assert response.status_code == 200, response.status_code
    return times


async def dom_content_loaded(url: str, paths: list[str]) -> list[float]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = await browser.new_page()
        times = []
        for path in paths:
            await page.goto(url + path, wait_until="domcontentloaded")
            entry = await page.evaluate(
                "performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd"
            )
            times.append(float(entry))
        await browser.close()
        return times


async def change_to_dom(url: str, run_ids: list[str]) -> list[float]:
    """Milliseconds from the commit of step ``shaky``'s completion to the DOM showing it."""
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
            await page.evaluate(
                """() => new Promise((ready) => {
                  const node = document.querySelector('g.node[data-step="shaky"]');
                  new MutationObserver(() => {
                    if (node.dataset.status === "completed") window.shownAt = Date.now();
                  }).observe(node, {attributes: true});
                  ready();
                })"""
            )
            response = await client.post(
                f"/api/orchestrations/{run_id}/actions/retry",
                json={"modifications": {"agentOverrides": {"shaky": "echo"}}},
            )
            response.raise_for_status()
            await page.wait_for_function("window.shownAt !== undefined", timeout=30_000)
            shown = await page.evaluate("window.shownAt")
            events = (await client.get(f"/api/orchestrations/{run_id}/events")).json()
            done = next(
                e
                for e in events
                if e["type"] == "orchestration.step.completed" and e["stepId"] == "shaky"
            )
            committed = datetime.fromisoformat(done["timestamp"]).timestamp() * 1000
            latencies.append(shown - committed)
            await page.close()
        await browser.close()
    return latencies


def bench(label: str, url: str, runs: int) -> list[str]:
    store = SqlStore.open(url)
    one = parse_definition(ONE)
    for _ in range(runs):
        launch(store, one, {}, organization="default")
    dags = {
        n: launch(store, parse_definition(fan(n)), {}, organization="default") for n in (100, 500)
    }
    store.close()
    lines = []
    with server(url, worker=False) as base, httpx.Client(base_url=base, timeout=30) as client:
        ttfb(client, "/", 5)  # warm-up
        t = ttfb(client, "/", 100)
        lines.append(
            f"{label:10}  runs list, {runs} runs: TTFB "
            f"p50 {pct(t, 0.5):.1f} ms, p95 {pct(t, 0.95):.1f} ms"
        )
        for n, run_id in dags.items():
            r = ttfb(client, f"/runs/{run_id}", 30)
            dcl = asyncio.run(dom_content_loaded(base, [f"/runs/{run_id}"] * 5))
            lines.append(
                f"{label:10}  run page, {n}-step DAG: server p50 {pct(r, 0.5):.1f} ms, "
                f"p95 {pct(r, 0.95):.1f} ms; "
                f"DOMContentLoaded median {statistics.median(dcl):.0f} ms"
            )
    with server(url) as base, httpx.Client(base_url=base, timeout=30) as client:
        client.post(
            "/api/definitions", content=FAILING, headers={"content-type": "application/yaml"}
        )
        ids = [
            client.post("/api/orchestrations", json={"definition": "bench-retry"}).json()["id"]
            for _ in range(20)
        ]
        for run_id in ids:
            while client.get(f"/api/orchestrations/{run_id}/status").json()["status"] != "failed":
                time.sleep(0.02)
        lat = asyncio.run(change_to_dom(base, ids))
        lines.append(
            f"{label:10}  state change to DOM: p50 {pct(lat, 0.5):.0f} ms, "
            f"p95 {pct(lat, 0.95):.0f} ms (n={len(lat)})"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--pg", default=os.environ.get("PODIUM_BENCH_DATABASE_URL", PG_DEFAULT))
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
                lines += bench("postgresql", url, args.runs)
            finally:
                drop()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
