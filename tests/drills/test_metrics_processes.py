"""Metrics across processes (issue 12): real ``podium worker --metrics-port`` processes on
PostgreSQL, scraped over HTTP."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from podium.domain.definition import parse_definition
from podium.engine.launcher import launch
from podium.storage.gauges import read_state
from podium.storage.store import SqlStore
from tests.support import TERMINAL

PODIUM = str(Path(sys.executable).with_name("podium"))

CHAIN = """
metadata: {name: metered, version: 1.0.0}
orchestration:
  steps:
    - {id: a, agent: echo, input: {text: "{{ run.id }}"}}
    - {id: b, agent: uppercase, depends_on: [a], input: {text: "{{ steps.a.output.text }}"}}
    - {id: c, agent: word-count, depends_on: [a], input: {text: "{{ steps.a.output.text }}"}}
"""

SLOW = """
metadata: {name: slow-one, version: 1.0.0}
orchestration:
  steps:
    - {id: nap, agent: sleep, input: {seconds: 4}}
"""


class MeteredWorker:
    """``podium worker --metrics-port 0`` in its own process."""

    def __init__(self, url: str, tmp: Path, n: int, **env: str) -> None:
        self.stderr_path = tmp / f"worker-{n}.err"
        environ = {
            **os.environ,
            "DATABASE_URL": url,
            "PODIUM_LEASE_SECONDS": "2",
            "PODIUM_HEARTBEAT_SECONDS": "0.4",
            "PODIUM_SWEEP_SECONDS": "0.3",
            "PODIUM_POLL_SECONDS": "0.2",
            **env,
        }
        with self.stderr_path.open("w") as err:
            self.proc = subprocess.Popen(
                [PODIUM, "worker", "--metrics-port", "0", "--concurrency", "8"],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=environ,
            )
        self.metrics_url = self._wait_for_port()

    def _wait_for_port(self, timeout: float = 30.0) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if not ready:
                continue
            line = self.proc.stdout.readline()
            if not line:
                break
            found = re.search(r"metrics on (http://\S+)", line)
            if found:
                return found.group(1)
        raise AssertionError(f"no metrics port: {self.stderr_path.read_text()}")

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = httpx.get(self.metrics_url, timeout=10).text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def store(pg_schema_url: str) -> Iterator[SqlStore]:
    s = SqlStore.open(pg_schema_url)
    yield s
    s.close()


def total(samples: dict[Any, float], name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def wait_until(probe: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout}s")
        time.sleep(0.1)


@pytest.mark.slow
def test_counters_summed_over_three_workers_equal_the_steps_executed(
    store: SqlStore, pg_schema_url: str, tmp_path: Path
) -> None:
    """Issue 12: each worker exports the work it did; their sum is exact."""
    workers = [MeteredWorker(pg_schema_url, tmp_path, n) for n in range(3)]
    try:
        defn = parse_definition(CHAIN)
        ids = [launch(store, defn, {}, organization="acme") for _ in range(30)]
        wait_until(lambda: all(store.get_run(r).status in TERMINAL for r in ids))
        scrapes = [w.scrape() for w in workers]
    finally:
        for w in workers:
            w.stop()
    completed = sum(1 for r in ids for s in store.steps_of(r) if s.status == "completed")
    assert completed == 90
    count = "orchestration_step_duration_seconds_count"
    assert sum(total(s, count, definition="metered", status="completed") for s in scrapes) == 90
    calls = sum(total(s, "orchestration_agent_calls_total", outcome="success") for s in scrapes)
    assert calls == 90
    queued = sum(total(s, "orchestration_step_queue_seconds_count") for s in scrapes)
    assert queued == 90
    runs = sum(
        total(s, "orchestration_runs_total", definition="metered", status="completed")
        for s in scrapes
    )
    assert runs == 30
    assert sum(1 for s in scrapes if total(s, count) > 0) >= 2  # the work was shared


@pytest.mark.slow
def test_gauges_are_right_at_the_next_scrape_after_a_worker_is_killed(
    store: SqlStore, pg_schema_url: str, tmp_path: Path
) -> None:
    """Issue 12: gauges come from the database, so a killed process leaves nothing stale."""
    victim = MeteredWorker(pg_schema_url, tmp_path, 0)
    run_id = launch(store, parse_definition(SLOW), {}, organization="acme")
    try:
        wait_until(lambda: any(s.status == "running" for s in store.steps_of(run_id)))
        before = victim.scrape()
        assert total(before, "orchestration_steps_in_flight") == 1
        assert total(before, "orchestration_runs_active", status="running") == 1
        victim.kill()
        survivor = MeteredWorker(pg_schema_url, tmp_path, 1)
        try:
            time.sleep(2.1)  # past the state gauges' 2 s scrape cache of the survivor
            truth_before = read_state(store.db, datetime.now(UTC)).in_flight
            after = survivor.scrape()
            truth_after = read_state(store.db, datetime.now(UTC)).in_flight
            assert total(after, "orchestration_runs_active", status="running") == 1
            # what the database says at that moment (the dead worker's lease runs out, the
            # survivor reclaims), never a value the dead process kept in memory
            assert total(after, "orchestration_steps_in_flight") in {truth_before, truth_after}
            # the lease of the dead worker runs out; the survivor reclaims and finishes
            assert wait_until(lambda: store.get_run(run_id).status == "completed")
            time.sleep(2.1)
            done = survivor.scrape()
            assert total(done, "orchestration_steps_in_flight") == 0
            assert total(done, "orchestration_runs_active", status="running") == 0
            assert total(done, "orchestration_recoveries_total", reason="lease_expired") == 1
        finally:
            survivor.stop()
    finally:
        victim.stop()
