"""The worker: claims steps, runs them, renews their leases, and sweeps up after the dead.

One worker per process runs any number of steps at once (``worker_concurrency``). On
PostgreSQL any number of worker processes share the work; on SQLite use one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from podium import metrics
from podium.agents.base import AgentResolver
from podium.domain.ids import new_id
from podium.domain.outcomes import StepError
from podium.engine.cache import StepCache
from podium.engine.executor import Outcome, execute
from podium.errors import LeaseLost, PodiumError
from podium.settings import Settings
from podium.storage.records import ClaimedStep
from podium.storage.settlements import Settlement
from podium.storage.store import SqlStore

log = logging.getLogger(__name__)

T = TypeVar("T")

_MAX_BATCH = 256


@dataclass
class _Running:
    step: ClaimedStep
    task: asyncio.Task[None]
    executing: bool = True  # cancel only while the agent runs, never while recording


def retry_time(step: ClaimedStep, error: StepError, now: datetime) -> datetime | None:
    """When to try ``step`` again after ``error``, or None if it has failed for good."""
    if not error.retryable:
        return None
    policy = step.definition.retry_policy(step.step_id)
    if step.attempt >= policy.maxAttempts:
        return None
    at = now + timedelta(milliseconds=policy.delay_ms(step.attempt, random.random()))
    if step.deadline_at is not None and at >= step.deadline_at:
        return None
    return at


class Worker:
    """Runs steps from the store until :meth:`stop` is called."""

    def __init__(
        self,
        store: SqlStore,
        agents: AgentResolver,
        settings: Settings,
        *,
        worker_id: str | None = None,
        close_agents: bool = False,
    ) -> None:
        """``close_agents``: the worker owns ``agents`` and awaits its ``aclose()`` (if it
        has one) when it stops."""
        self.store = store
        self.agents = agents
        self.settings = settings
        self.id = worker_id or f"{socket.gethostname()}-{new_id()[-12:]}"
        self._running: dict[str, _Running] = {}
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.completed = 0
        # slots promised to claims still in flight, so that two claims never overshoot
        self._reserved = 0
        self._background: set[asyncio.Task[None]] = set()
        # finished attempts waiting to be recorded, with who waits for the answer
        self._settled: list[tuple[Settlement, asyncio.Future[bool]]] = []
        self._settled_ready = asyncio.Event()
        self._inline_db = store.db.is_sqlite
        self._close_agents = close_agents
        self._cache = StepCache(store.cache, self._db)  # the step cache port (issue 12)
        metrics.configure(settings.metrics_max_series)

    # -- lifecycle ------------------------------------------------------------------------

    async def run(self) -> None:
        """Work until :meth:`stop`; then let in-flight steps finish (bounded) and return."""
        self._loop = asyncio.get_running_loop()
        self.store.add_listener(self._on_wakeup)
        await self._db(self.store.register_worker, self.id, self.settings.worker_concurrency)
        background = [
            asyncio.create_task(self._heartbeat_loop(), name="podium-heartbeat"),
            asyncio.create_task(self._sweep_loop(), name="podium-sweep"),
            asyncio.create_task(self._recorder_loop(), name="podium-recorder"),
        ]
        try:
            await self._claim_loop()
        finally:
            await self._drain()
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            self.store.remove_listener(self._on_wakeup)
            with contextlib.suppress(PodiumError, OSError):
                await self._db(self.store.stop_worker, self.id)
            closer = getattr(self.agents, "aclose", None)
            if self._close_agents and closer is not None:
                await closer()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    @property
    def in_flight(self) -> int:
        return len(self._running)

    def _on_wakeup(self, payload: str) -> None:
        """Called from any thread when work may be available or a run changed status."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._woken, payload)

    def _woken(self, payload: str) -> None:
        kind, _, rest = payload.partition(":")
        if kind == "events":
            return  # new events alone bring no work (they wake streams, not workers)
        self._wake.set()
        run_id, _, status = rest.partition(":")
        if (
            kind == "run"
            and status in ("aborted", "failed")
            and any(e.step.run_id == run_id for e in self._running.values())
        ):
            # the run changed status (aborted, failed by deadline): stop what it no longer
            # lets this worker hold, without waiting for the next heartbeat
            task = asyncio.create_task(self._recheck(run_id))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _recheck(self, run_id: str) -> None:
        mine = [rid for rid, e in self._running.items() if e.step.run_id == run_id]
        try:
            held = await self._db(self.store.held_by, mine, self.id)
        except PodiumError as exc:
            log.warning("lease check failed: %s", exc)
            return
        self._cancel_lost(set(mine) - held)

    async def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one storage transaction.

        PostgreSQL transactions wait on the network, so they run in a thread and several
        overlap. SQLite admits one writer at a time and its transactions take well under a
        millisecond, so a thread would buy no parallelism and its hand-off would cost more
        than the transaction: they run inline.
        """
        if self._inline_db:
            return fn(*args, **kwargs)
        return await asyncio.to_thread(fn, *args, **kwargs)

    # -- claiming -------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        settings = self.settings
        while not self._stopping.is_set():
            self._wake.clear()
            free = self._free_slots()
            claimed: list[ClaimedStep] = []
            if free > 0:
                self._reserved += free
                try:
                    claimed = await self._db(
                        self.store.claim,
                        worker_id=self.id,
                        capacity=free,
                        lease_seconds=settings.lease_seconds,
                    )
                except PodiumError as exc:
                    log.warning("claim failed: %s", exc)
                finally:
                    self._reserved -= free
            for step in claimed:
                self._start(step)
            if claimed and len(claimed) == free:
                continue  # there may be more; look again at once if a slot frees up
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), settings.poll_seconds)

    def _free_slots(self) -> int:
        return self.settings.worker_concurrency - len(self._running) - self._reserved

    def _start(self, step: ClaimedStep) -> None:
        task = asyncio.create_task(self._run_step(step), name=f"step-{step.step_id}")
        self._running[step.step_record_id] = _Running(step, task)

    async def _run_step(self, step: ClaimedStep) -> None:
        entry = self._running.get(step.step_record_id)
        log.info("step %s of run %s: attempt %d started", step.step_id, step.run_id, step.attempt)
        definition = step.definition.metadata.name
        if step.queued_at is not None:  # metrics (issue 12): queued -> running
            queue_seconds = (step.started_at - step.queued_at).total_seconds()
            metrics.step_queued(definition, step.step_id, queue_seconds)
        try:
            try:
                outcome = await execute(
                    step, self.agents, self._runtime_saver(step), cache=self._cache
                )
            except asyncio.CancelledError:
                log.info("step %s of run %s cancelled: lease lost", step.step_id, step.run_id)
                return
            if entry is not None:
                entry.executing = False
            if await self._record(step, outcome):
                metrics.step_finished(  # issue 12: counted by the worker that recorded it
                    definition,
                    step.step_id,
                    "completed" if outcome.ok else "failed",
                    (datetime.now(UTC) - step.started_at).total_seconds(),
                )
                log.info(
                    "step %s of run %s: %s",
                    step.step_id,
                    step.run_id,
                    "completed"
                    if outcome.ok
                    else f"failed ({outcome.error and outcome.error.code})",
                )
            else:
                log.info(
                    "step %s of run %s: lease lost; result discarded", step.step_id, step.run_id
                )
        except LeaseLost as exc:
            log.info("step %s of run %s: %s; attempt abandoned", step.step_id, step.run_id, exc)
        except PodiumError as exc:
            # the lease will expire and another claim will run the step again
            log.warning("could not record step %s of run %s: %s", step.step_id, step.run_id, exc)
        except Exception:
            log.exception("unexpected error running step %s of run %s", step.step_id, step.run_id)
        finally:
            self._running.pop(step.step_record_id, None)
            self._wake.set()

    def _runtime_saver(self, step: ClaimedStep) -> Callable[[str, Any], Awaitable[None]]:
        async def save(key: str, value: Any) -> None:
            await self._db(self.store.set_step_runtime, step, key, value)

        return save

    async def _record(self, step: ClaimedStep, outcome: Outcome) -> bool:
        """Hand the outcome to the recorder; True once committed, False if fenced out."""
        retry_at = None
        if outcome.error is not None:
            retry_at = retry_time(step, outcome.error, datetime.now(UTC))
        settlement = Settlement(
            step,
            output=outcome.output,
            error=outcome.error,
            retry_at=retry_at,
            resolved_input=outcome.resolved_input,
            cache=outcome.cache,
        )
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._settled.append((settlement, done))
        self._settled_ready.set()
        accepted = await done
        if accepted and retry_at is not None and self._loop is not None:
            delay = max((retry_at - datetime.now(UTC)).total_seconds(), 0.0)
            self._loop.call_later(delay, self._wake.set)
        return accepted

    async def _recorder_loop(self) -> None:
        """Record finished attempts, everything that finished since the last write in one
        transaction (group commit), and start the follow-up steps that transaction claimed."""
        while True:
            await self._settled_ready.wait()
            self._settled_ready.clear()
            while self._settled:
                batch, self._settled = self._settled[:_MAX_BATCH], self._settled[_MAX_BATCH:]
                # the slots of the steps being recorded are about to free up
                free = 0 if self._stopping.is_set() else max(self._free_slots() + len(batch), 0)
                self._reserved += free
                try:
                    result = await self._db(
                        self.store.record,
                        [s for s, _ in batch],
                        worker_id=self.id,
                        claim_next=free,
                        lease_seconds=self.settings.lease_seconds,
                    )
                except Exception as exc:
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                    continue
                finally:
                    self._reserved -= free
                lost = set(result.lost)
                for settlement, done in batch:
                    if not done.done():
                        done.set_result(settlement.step.step_record_id not in lost)
                self.completed += len(batch) - len(lost)
                for claimed in result.claimed:
                    self._start(claimed)

    # -- leases ---------------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_interval)
            # only the steps running now: one claimed while the renewal is under way is not
            # in its answer, and must not be taken for lost
            mine = list(self._running)
            try:
                held = await self._db(
                    self.store.renew_leases,
                    worker_id=self.id,
                    step_record_ids=mine,
                    lease_seconds=self.settings.lease_seconds,
                )
            except PodiumError as exc:
                log.warning("heartbeat failed: %s", exc)
                continue
            self._cancel_lost(set(mine) - held)

    def _cancel_lost(self, lost: set[str]) -> None:
        """Stop the agent calls of steps this worker no longer holds (aborted, timed out,
        reclaimed)."""
        for record_id in lost:
            entry = self._running.get(record_id)
            if entry is not None and entry.executing:
                entry.task.cancel()

    async def _sweep_loop(self) -> None:
        while True:
            try:
                reclaimed = await self._db(
                    self.store.reclaim_expired, max_recoveries=self.settings.max_recoveries
                )
                for record_id, outcome in reclaimed:
                    log.warning(
                        "step record %s reclaimed after lease expiry: %s", record_id, outcome
                    )
                    metrics.recovery("worker_lost" if outcome == "failed" else "lease_expired")
                if reclaimed:
                    self._wake.set()
                await self._db(self.store.enforce_deadlines)
                await self._db(self.store.cache.sweep, datetime.now(UTC))  # expired entries
            except PodiumError as exc:
                log.warning("sweep failed: %s", exc)
            await asyncio.sleep(self.settings.sweep_seconds)

    async def _drain(self, grace: float = 10.0) -> None:
        tasks = [entry.task for entry in self._running.values()]
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
