"""D8: on SQLite, the API and a worker writing at once produce no ``database is locked``."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import pytest

from podium.domain.definition import parse_definition
from podium.engine.launcher import launch
from podium.errors import Conflict
from podium.storage.store import SqlStore
from tests.drills.harness import Fleet
from tests.support import TERMINAL, wait_for

THREADS = 4
RUNS_PER_THREAD = 25

QUICK = parse_definition(
    """
metadata: {name: d8-quick, version: 1.0.0}
orchestration:
  steps:
    - {id: a, agent: drill-work, input: {min_ms: 10, max_ms: 40}}
    - {id: b, agent: drill-work, depends_on: [a], input: {min_ms: 10, max_ms: 40}}
    - {id: c, agent: drill-work, depends_on: [a], input: {min_ms: 10, max_ms: 40}}
"""
)

LOCKED = ("database is locked", "database table is locked", "transient database error")


@pytest.mark.timeout(90)
async def test_d8_api_and_worker_write_sqlite_at_once_without_lock_errors(
    sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """D8: a worker process runs steps on a SQLite file while, in this process, 4 "API"
    threads launch 25 runs each and abort every third run launched (often mid-run), and a
    reader thread lists runs and reads events. Every launch succeeds, every abort succeeds or
    answers Conflict (the run had already completed), every run ends (aborted or completed),
    and neither process reports a locked database."""
    caplog.set_level(logging.WARNING)
    store = SqlStore.open(sqlite_url)
    errors: list[BaseException] = []
    launched: list[str] = []
    aborted: set[str] = set()
    conflicts: set[str] = set()
    start = threading.Barrier(THREADS + 1)
    writers_done = threading.Event()
    lock = threading.Lock()

    def api_writer() -> None:
        mine: list[str] = []
        try:
            start.wait(timeout=10)
            for k in range(RUNS_PER_THREAD):
                mine.append(launch(store, QUICK, {}, organization="acme"))
                if k % 3 == 2:
                    target = mine[-2]  # launched a moment ago: often in flight
                    try:
                        store.abort(target, actor="drill", reason="D8")
                        with lock:
                            aborted.add(target)
                    except Conflict:
                        with lock:
                            conflicts.add(target)
        except BaseException as exc:
            errors.append(exc)
        finally:
            with lock:
                launched.extend(mine)

    def api_reader() -> None:
        try:
            start.wait(timeout=10)
            while not writers_done.is_set():
                for run in store.list_runs(limit=20):
                    store.events_after(run.id)
        except BaseException as exc:
            errors.append(exc)

    def api() -> None:
        writers = [threading.Thread(target=api_writer) for _ in range(THREADS)]
        reader = threading.Thread(target=api_reader)
        for t in (*writers, reader):
            t.start()
        for t in writers:
            t.join(timeout=60)
        writers_done.set()
        reader.join(timeout=30)

    try:
        with Fleet(sqlite_url, tmp_path, concurrency=8) as fleet:
            fleet.start()
            await asyncio.to_thread(api)
            assert not errors, errors
            assert len(launched) == THREADS * RUNS_PER_THREAD

            runs = await wait_for(
                lambda: [store.get_run(r) for r in launched],
                lambda rs: all(r.status in TERMINAL for r in rs),
                timeout=60,
            )
            fleet.stop_all()
            status = {r.id: r.status for r in runs}
            assert {status[r] for r in aborted} <= {"aborted"}
            assert {status[r] for r in conflicts} <= {"completed"}
            others = set(launched) - aborted - conflicts
            assert {status[r] for r in others} == {"completed"}
            print(
                f"D8: {len(launched)} runs launched, {len(aborted)} aborted, "
                f"{len(conflicts)} completed before their abort"
            )
            stderr = fleet.stderr()
            for needle in (*LOCKED, "Traceback"):
                assert needle not in stderr, stderr
            for needle in LOCKED:
                assert needle not in caplog.text, caplog.text
    finally:
        store.close()
