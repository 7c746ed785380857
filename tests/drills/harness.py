"""Worker processes for drills, and the crash drill shared by D1 and D3.

:class:`Fleet` starts ``python -m tests.drills.worker_proc`` processes, waits for their
``READY`` line, kills them with SIGKILL, and always kills what is left on exit. A process
started with ``api=True`` is a ``podium serve`` (the API and its embedded worker) at
:attr:`WorkerProc.api_url`; ``env`` adds variables to one process (a ``PODIUM_FAULT``).
"""

from __future__ import annotations

import asyncio
import os
import random
import select
import signal
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from podium.domain.definition import Definition, parse_definition
from podium.domain.events import EventType
from podium.engine.launcher import launch
from podium.storage.records import EventRecord
from podium.storage.store import SqlStore
from tests.drills.agents import LOG_ENV, Rec, read_log
from tests.support import TERMINAL

ROOT = Path(__file__).resolve().parents[2]

# Short leases so that recovery takes about two seconds (see worker_proc for the options).
FAST = {"lease": 1.5, "heartbeat": 0.3, "sweep": 0.3, "poll": 0.2}


def epoch(ts: datetime) -> float:
    """A stored (timezone-aware) timestamp as seconds since the epoch, like the agent log."""
    return ts.timestamp()


@dataclass
class WorkerProc:
    """One worker process."""

    proc: subprocess.Popen[str]
    stderr_path: Path
    options: dict[str, Any]
    worker_id: str = ""
    pid: int = 0
    ready_at: float = 0.0  # time.time() when READY was read
    api_url: str = ""  # the API's base URL, for a worker started with api=True
    died_at: float | None = None  # time.time() once reaped after SIGKILL (or exit)
    stopped: bool = False  # stopped gracefully by the test

    def wait_ready(self, timeout: float = 20.0) -> None:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"worker not ready within {timeout}s:\n{self.stderr()}")
            readable, _, _ = select.select([self.proc.stdout], [], [], remaining)
            if not readable:
                continue
            line = self.proc.stdout.readline()
            if not line:
                self.proc.wait(timeout=5)
                raise AssertionError(
                    f"worker exited ({self.proc.returncode}) before READY:\n{self.stderr()}"
                )
            if line.startswith("API "):
                self.api_url = line.split()[1]
            if line.startswith("READY "):
                _, self.worker_id, pid = line.split()
                self.pid = int(pid)
                self.ready_at = time.time()
                return

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> float:
        """SIGKILL and reap; returns (and records) the time the process was gone."""
        if self.alive:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.died_at = time.time()
        return self.died_at

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to end by itself (for instance killed by its own agent)."""
        code = self.proc.wait(timeout=timeout)
        self.died_at = time.time()
        return code

    def terminate(self, timeout: float = 20.0) -> int:
        """Graceful stop (SIGTERM); SIGKILL if it does not stop within ``timeout``."""
        self.stopped = True
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"worker {self.pid} ignored SIGTERM for {timeout}s") from None
        return self.proc.returncode

    def stderr(self) -> str:
        return self.stderr_path.read_text() if self.stderr_path.exists() else ""


class Fleet:
    """Worker processes on one database; every process is killed when the block ends."""

    def __init__(
        self, url: str, workdir: Path, *, env: dict[str, str] | None = None, **options: Any
    ) -> None:
        self.url = url
        self.workdir = workdir
        self.log_path = workdir / "executions.log"
        self.options = {**FAST, "concurrency": 8, **options}
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
            LOG_ENV: str(self.log_path),
            **(env or {}),
        }
        self.started: list[WorkerProc] = []

    def __enter__(self) -> Fleet:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for w in self.started:
            if w.alive:
                w.kill()
            if w.proc.stdout is not None:
                w.proc.stdout.close()

    def start(
        self, *, wait: bool = True, env: dict[str, str] | None = None, **options: Any
    ) -> WorkerProc:
        opts = {**self.options, **options}
        argv = [sys.executable, "-m", "tests.drills.worker_proc", self.url]
        for name, value in opts.items():
            flag = f"--{name.replace('_', '-')}"
            if value is True:  # a switch, such as api=True
                argv.append(flag)
            elif value is not None and value is not False:
                argv += [flag, str(value)]
        stderr_path = self.workdir / f"worker-{len(self.started)}.stderr"
        with stderr_path.open("w") as err:
            proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                env={**self.env, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        w = WorkerProc(proc, stderr_path, opts)
        self.started.append(w)
        if wait:
            w.wait_ready()
        return w

    @property
    def alive(self) -> list[WorkerProc]:
        return [w for w in self.started if w.alive]

    def stop_all(self) -> None:
        for w in self.alive:
            w.terminate()

    def records(self) -> list[Rec]:
        return read_log(self.log_path)

    def deaths(self) -> dict[int, float]:
        """pid -> when that process was seen dead (only processes that were killed or died)."""
        return {w.pid: w.died_at for w in self.started if w.died_at is not None}

    def check_no_unexpected_exit(self) -> None:
        """Fail if a worker ended without the test killing or stopping it."""
        for w in self.started:
            if w.died_at is None and not w.alive and not w.stopped:
                raise AssertionError(
                    f"worker {w.pid} exited by itself ({w.proc.returncode}):\n{w.stderr()}"
                )

    def stderr(self) -> str:
        return "\n".join(f"--- worker {w.pid} ---\n{w.stderr()}" for w in self.started)


# -- the crash drill ----------------------------------------------------------------------

DRILL_DAG = """
metadata: {name: crash-drill, version: 1.0.0}
orchestration:
  execution: {concurrency: {maxParallelSteps: 3}}
  steps:
    - {id: start, agent: drill-work, input: {min_ms: 50, max_ms: 300}}
    - id: left
      agent: drill-work
      depends_on: [start]
      input: {min_ms: 50, max_ms: 300, up: "{{ steps.start.output.nonce }}"}
    - id: middle
      agent: drill-work
      depends_on: [start]
      input: {min_ms: 50, max_ms: 300, up: "{{ steps.start.output.nonce }}"}
    - id: right
      agent: drill-work
      depends_on: [start]
      input: {min_ms: 50, max_ms: 300, up: "{{ steps.start.output.nonce }}"}
    - id: join
      agent: drill-work
      depends_on: [left, middle, right]
      input:
        min_ms: 50
        max_ms: 300
        up: ["{{ steps.left.output.nonce }}", "{{ steps.middle.output.nonce }}",
             "{{ steps.right.output.nonce }}"]
    - id: finish
      agent: drill-work
      depends_on: [join]
      input: {min_ms: 50, max_ms: 300, up: "{{ steps.join.output.nonce }}"}
"""


def drill_definition(min_ms: int = 50, max_ms: int = 300) -> Definition:
    """:data:`DRILL_DAG` with its steps sleeping between ``min_ms`` and ``max_ms``."""
    return parse_definition(
        DRILL_DAG.replace("min_ms: 50", f"min_ms: {min_ms}").replace(
            "max_ms: 300", f"max_ms: {max_ms}"
        )
    )


@dataclass
class DrillResult:
    run_ids: list[str]
    kills: int
    elapsed: float
    records: list[Rec] = field(default_factory=list)
    deaths: dict[int, float] = field(default_factory=dict)

    def by_key(self) -> dict[str, list[Rec]]:
        out: dict[str, list[Rec]] = defaultdict(list)
        for r in self.records:
            out[r.key].append(r)
        return out


def _statuses(store: SqlStore, run_ids: set[str]) -> dict[str, str]:
    found = store.list_runs(definition="crash-drill", limit=10_000)
    return {r.id: r.status for r in found if r.id in run_ids}


async def crash_drill(
    store: SqlStore,
    fleet: Fleet,
    *,
    n_runs: int,
    n_workers: int = 2,
    launch_every: float = 0.0,
    kill_every: tuple[float, float] = (1.0, 3.0),
    victims: str = "random",
    step_ms: tuple[int, int] = (50, 300),
    timeout: float = 120.0,
) -> DrillResult:
    """Launch ``n_runs`` runs of :data:`DRILL_DAG` (one every ``launch_every`` s) while
    ``n_workers`` worker processes run them; every ``kill_every`` seconds (uniform) SIGKILL a
    worker and start a replacement; return once every run is terminal. ``victims`` is
    ``"random"`` (any live worker) or ``"busy"`` (a worker with an agent call in progress,
    per the drill log, when there is one).

    The sleeps below pace the fault injection and the launches; they synchronise nothing:
    the end is found by polling run statuses against a deadline.
    """
    defn = drill_definition(*step_ms)
    rng = random.Random()
    for _ in range(n_workers):
        fleet.start()
    t0 = time.monotonic()
    deadline = t0 + timeout
    next_kill = t0 + rng.uniform(*kill_every)
    next_launch = t0
    run_ids: list[str] = []
    kills = 0
    while True:
        fleet.check_no_unexpected_exit()
        now = time.monotonic()
        if now > deadline:
            left = {k: v for k, v in _statuses(store, set(run_ids)).items() if v not in TERMINAL}
            raise AssertionError(
                f"{len(left)} of {n_runs} runs not terminal after {timeout}s "
                f"({kills} kills): {left}\n{fleet.stderr()}"
            )
        if len(run_ids) < n_runs and now >= next_launch:
            run_ids.append(launch(store, defn, {}, organization="acme"))
            next_launch = now + launch_every
            continue
        if now >= next_kill:
            victim = rng.choice(_busy(fleet) if victims == "busy" else fleet.alive)
            victim.kill()
            kills += 1
            fleet.start()  # the replacement (waits for its READY line)
            next_kill = time.monotonic() + rng.uniform(*kill_every)
        if len(run_ids) == n_runs:
            statuses = _statuses(store, set(run_ids))
            if len(statuses) == n_runs and all(s in TERMINAL for s in statuses.values()):
                break
        await asyncio.sleep(0.05)
    elapsed = time.monotonic() - t0
    fleet.stop_all()
    return DrillResult(run_ids, kills, elapsed, fleet.records(), fleet.deaths())


def _busy(fleet: Fleet) -> list[WorkerProc]:
    """Live workers with an execution in progress (or all live workers if none has one)."""
    open_execs: dict[str, int] = {}
    for r in fleet.records():
        if r.phase == "start":
            open_execs[r.exec_id] = r.pid
        else:
            open_execs.pop(r.exec_id, None)
    pids = set(open_execs.values())
    return [w for w in fleet.alive if w.pid in pids] or fleet.alive


def step_events(events: list[EventRecord], step_record_id: str) -> list[EventRecord]:
    return [e for e in events if e.step_record_id == step_record_id]


def completed_events(events: list[EventRecord]) -> list[EventRecord]:
    return [e for e in events if e.type == EventType.STEP_COMPLETED]


def all_events(store: SqlStore, run_id: str) -> list[EventRecord]:
    out: list[EventRecord] = []
    while True:
        page = store.events_after(run_id, out[-1].sequence if out else 0, limit=1000)
        if not page:
            return out
        out += page
