"""Drill agents: they record every execution durably, independently of Podium's tables.

Each execution appends lines to the file named by ``PODIUM_DRILL_LOG`` (``O_APPEND``, then
``fsync``, so a line written before a ``kill -9`` is never lost)::

    start  <unix time> <exec id> <run id> <step id> <idempotency key> <attempt> <pid>
    end    ...        (the agent returned; its output carries the exec id as ``nonce``)
    cancel ...        (the worker cancelled the agent: it lost the lease)

A test reads the file back with :func:`read_log` and counts, orders and compares executions.

With ``PODIUM_DRILL_HOLD_AFTER=N`` in its environment, a process's ``work`` calls after its
first N never return (they wait until the process is killed or the call cancelled): work in
flight at the moment a drill kills that process, whenever the kill lands.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podium.agents.base import AgentContext

LOG_ENV = "PODIUM_DRILL_LOG"
HOLD_ENV = "PODIUM_DRILL_HOLD_AFTER"
_calls_here = itertools.count(1)  # work calls started in this process

# registered by tests.drills.worker_proc: slug -> "module:function"
AGENTS = {
    "drill-work": "tests.drills.agents:work",
    "drill-slow-sync": "tests.drills.agents:slow_sync",
    "drill-crash": "tests.drills.agents:crash",
}


@dataclass(frozen=True)
class Rec:
    """One line of the drill log."""

    phase: str  # start | end | cancel
    t: float  # time.time() when written
    exec_id: str
    run_id: str
    step_id: str
    key: str  # the idempotency key {runId}:{stepRecordId}:{generation}
    attempt: int
    pid: int

    @property
    def step_record_id(self) -> str:
        return self.key.split(":")[1]


def _append(line: str) -> None:
    path = os.environ[LOG_ENV]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())  # one write(2) of one short line: atomic with O_APPEND
        os.fsync(fd)
    finally:
        os.close(fd)


def record(phase: str, exec_id: str, ctx: AgentContext) -> None:
    _append(
        f"{phase} {time.time():.6f} {exec_id} {ctx.run_id} {ctx.step_id} "
        f"{ctx.idempotency_key} {ctx.attempt} {os.getpid()}\n"
    )


def read_log(path: str | Path) -> list[Rec]:
    """Every record written so far (a torn last line, impossible with one write, is skipped)."""
    p = Path(path)
    if not p.exists():
        return []
    out = []
    for line in p.read_text().splitlines():
        parts = line.split()
        if len(parts) != 8:
            continue
        phase, t, exec_id, run_id, step_id, key, attempt, pid = parts
        out.append(Rec(phase, float(t), exec_id, run_id, step_id, key, int(attempt), int(pid)))
    return out


def _started_before(key: str) -> bool:
    return any(r.key == key and r.phase == "start" for r in read_log(os.environ[LOG_ENV]))


def _duration(input: Any, key: str) -> float:
    """Seconds to work: ``seconds``, or uniform in [``min_ms``, ``max_ms``]; ``first_seconds``
    instead on the first execution of this idempotency key (so that a kill lands mid-step
    and the recovery is quick)."""
    spec = input if isinstance(input, dict) else {}
    if "first_seconds" in spec and not _started_before(key):
        return float(spec["first_seconds"])
    if "seconds" in spec:
        return float(spec["seconds"])
    lo, hi = float(spec.get("min_ms", 50)), float(spec.get("max_ms", 300))
    return random.uniform(lo, hi) / 1000


@contextmanager
def _execution(ctx: AgentContext) -> Iterator[str]:
    exec_id = uuid.uuid4().hex[:16]
    record("start", exec_id, ctx)
    try:
        yield exec_id
    except asyncio.CancelledError:
        record("cancel", exec_id, ctx)
        raise
    record("end", exec_id, ctx)


def _output(exec_id: str, ctx: AgentContext, input: Any) -> dict[str, Any]:
    return {"nonce": exec_id, "pid": os.getpid(), "step": ctx.step_id, "input": input}


def _held() -> bool:
    """Whether this call is past the first ``PODIUM_DRILL_HOLD_AFTER`` of this process."""
    limit = os.environ.get(HOLD_ENV)
    return limit is not None and next(_calls_here) > int(limit)


async def work(input: Any, ctx: AgentContext) -> dict[str, Any]:
    """Sleep a while (see :func:`_duration`) without blocking the worker's event loop; never
    return if the process holds its calls (module docstring)."""
    seconds = _duration(input, ctx.idempotency_key)
    held = _held()
    with _execution(ctx) as exec_id:
        await asyncio.sleep(seconds)
        if held:
            await asyncio.Event().wait()
    return _output(exec_id, ctx, input)


def slow_sync(input: Any, ctx: AgentContext) -> dict[str, Any]:
    """A blocking agent (runs in a worker thread) that takes ``seconds``: the worker must keep
    heartbeating meanwhile (D4)."""
    seconds = _duration(input, ctx.idempotency_key)
    with _execution(ctx) as exec_id:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(min(0.05, max(deadline - time.monotonic(), 0)))
    return _output(exec_id, ctx, input)


async def crash(input: Any, ctx: AgentContext) -> None:
    """Kill the whole worker process, every time (a poison step, D5)."""
    exec_id = uuid.uuid4().hex[:16]
    record("start", exec_id, ctx)
    os.kill(os.getpid(), signal.SIGKILL)
    await asyncio.sleep(60)  # never reached: SIGKILL cannot be caught
