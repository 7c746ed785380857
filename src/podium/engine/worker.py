"""The worker: claims steps, runs them, renews their leases, and sweeps up after the dead.

One worker per process runs any number of steps at once (``worker_concurrency``). On
PostgreSQL any number of worker processes share the work; on SQLite use one.

Its background loops (heartbeat, sweeper, recorder) are supervised
(:mod:`podium.engine.supervision`): a loop that raises is restarted with backoff, and one
that keeps failing stops the worker, whose :meth:`Worker.run` then raises
:class:`~podium.engine.supervision.LoopFailed`. On stop, steps in flight get
``shutdown_grace_seconds`` to finish; the rest are cancelled and their leases given back, so
another worker takes them at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from podium import metrics
from podium.agents.base import AgentResolver
from podium.domain.ids import new_id
from podium.domain.outcomes import ErrorCode, StepError
from podium.domain.payloads import PayloadLimits
from podium.engine.attempt import AttemptObserver, SaveRuntime, StepCache, StepPorts
from podium.engine.cache import StepCache as ResultCache
from podium.engine.children import ChildWatch, is_orchestration_step, launch_child
from podium.engine.executor import Outcome, execute
from podium.engine.progress import ProgressReporter
from podium.engine.supervision import LoopFailed, supervise
from podium.errors import LeaseLost, PodiumError, StorageUnavailable
from podium.logs import bind_fields
from podium.settings import Settings
from podium.storage.availability import Backoff
from podium.storage.records import ClaimedStep
from podium.storage.settlements import Recorded, Settlement
from podium.storage.store import SqlStore

log = logging.getLogger(__name__)

T = TypeVar("T")

_MAX_BATCH = 256
# retrying writes that must not be dropped while the database is away (D6): back within
# about a second of its return
_OUTAGE_BACKOFF_CAP = 1.0
# how long steps cancelled at shutdown may take to wind down (an A2A CancelTask, ...)
_CANCEL_WAIT = 10.0

_Pending = tuple[Settlement, "asyncio.Future[bool]"]


@dataclass
class _Running:
    step: ClaimedStep
    task: asyncio.Task[None]
    executing: bool = True  # cancel only while the agent runs, never while recording
    cancel_reason: str | None = None  # why this worker cancelled it (for the log)


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


def unrecordable(settlement: Settlement, exc: BaseException) -> Settlement:
    """What to record instead of a settlement the database refused on its own: a final
    failure of its step (``agent_output_invalid`` for an output, else ``internal_error``)
    that carries neither the output nor the input, which may be what was refused."""
    code = ErrorCode.AGENT_OUTPUT_INVALID if settlement.error is None else ErrorCode.INTERNAL_ERROR
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    return Settlement(
        settlement.step,
        error=StepError(str(code), f"the result could not be stored: {reason}", False),
        cache=settlement.cache,  # ends the step cache's single flight
    )


class Worker:
    """Runs steps from the store until :meth:`stop` is called.

    ``cache`` and ``observers`` are handed to every attempt (the seam of
    :mod:`podium.engine.attempt`): a step cache port and attempt observers such as metrics.
    """

    def __init__(
        self,
        store: SqlStore,
        agents: AgentResolver,
        settings: Settings,
        *,
        worker_id: str | None = None,
        close_agents: bool = False,
        cache: StepCache | None = None,
        observers: Sequence[AttemptObserver] = (),
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
        # work may be waiting that the last claim did not take (it was cut short by this
        # worker's capacity, or work was announced since): a slot that frees up then looks
        # for it. Otherwise a finished step needs no claim of its own, since the recorder
        # claims the follow-ups of the runs it settles (a chain step: one transaction)
        self._work_may_wait = True
        self._background: set[asyncio.Task[None]] = set()
        # finished attempts waiting to be recorded, with who waits for the answer
        self._settled: list[_Pending] = []
        self._settled_ready = asyncio.Event()
        self._close_agents = close_agents
        self._cache = cache
        # agent calls are counted for the metrics by an observer like any other (issue 12)
        self._observers = (*observers, metrics.AgentCallCounter())
        self._limits = PayloadLimits(settings.max_nesting_depth, settings.max_output_bytes)
        self.fatal: LoopFailed | None = None
        # a lease renewal and a group commit both lock this worker's running step rows, in
        # different orders: on PostgreSQL, run at once, they can deadlock each other
        self._lease_writes = asyncio.Lock()
        # database outages (D6): writes and renewals retried with backoff, and the sweeper
        # lets live workers renew the leases an outage let lapse before it reclaims any
        self._record_backoff = Backoff(cap=_OUTAGE_BACKOFF_CAP)
        self._heartbeat_backoff = Backoff(cap=min(_OUTAGE_BACKOFF_CAP, settings.heartbeat_interval))
        self._heartbeat_delay = settings.heartbeat_interval
        self._outage_seen = False
        # the step cache of spec section 9 (issue 12), shared by every worker through the
        # database
        self._step_cache = ResultCache(store.cache, self._db)
        metrics.configure(settings.metrics_max_series)

    # -- lifecycle ------------------------------------------------------------------------

    async def run(self) -> None:
        """Work until :meth:`stop`; then let in-flight steps finish for the shutdown grace,
        give back the leases of the rest, and return.

        Raises :class:`LoopFailed` if a background loop could not run (the worker stopped
        on its own); cancelling ``run`` stops at once (no grace).
        """
        self._loop = asyncio.get_running_loop()
        bind_fields(worker_id=self.id)  # this task's context; the loops it starts copy it
        self.store.add_listener(self._on_wakeup)
        await self._db(self.store.register_worker, self.id, self.settings.worker_concurrency)
        children = ChildWatch(self.store, self.settings, self._db)  # issue 11
        loops: list[tuple[str, Callable[[], Any]]] = [
            ("heartbeat", self._heartbeat_round),
            ("sweeper", self._sweep_round),
            ("recorder", self._recorder_round),
            # settles parent steps whose child run ended
            ("children", children.run),
            # human checkpoints: expiry within 2 s (A2), its own cadence, not sweep_seconds
            ("approvals", self._approval_round),
        ]
        background = [
            asyncio.create_task(
                supervise(name, body, on_fatal=self._on_fatal), name=f"podium-{name}"
            )
            for name, body in loops
        ]
        grace = self.settings.shutdown_grace_seconds
        try:
            await self._claim_loop()
        except asyncio.CancelledError:
            grace = 0.0
            raise
        finally:
            await self._drain(0.0 if self.fatal is not None else grace)
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            self.store.remove_listener(self._on_wakeup)
            with contextlib.suppress(PodiumError, OSError):
                await self._db(self.store.stop_worker, self.id)
            closer = getattr(self.agents, "aclose", None)
            if self._close_agents and closer is not None:
                await closer()
        if self.fatal is not None:
            raise self.fatal

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def _on_fatal(self, error: LoopFailed) -> None:
        if self.fatal is None:
            self.fatal = error
        self.stop()

    @property
    def in_flight(self) -> int:
        return len(self._running)

    def _on_wakeup(self, payload: str) -> None:
        """Called from any thread when work may be available or a run changed status."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._woken, payload)

    def _woken(self, payload: str) -> None:
        try:
            self._on_payload(payload)
        except Exception:  # a wake-up must never break the listener that delivers it
            log.exception("wake-up %r not handled", payload)

    def _on_payload(self, payload: str) -> None:
        kind, _, rest = payload.partition(":")
        if kind == "events":
            return  # new events alone bring no work (they wake streams, not workers)
        self._nudge()
        run_id, _, status = rest.partition(":")
        if (
            kind == "run"
            and status in ("aborted", "failed")
            and any(e.step.run_id == run_id for e in self._running.values())
        ):
            # the run changed status (aborted, failed by deadline): stop what it no longer
            # lets this worker hold, without waiting for the next heartbeat
            self._spawn(self._recheck([run_id]))

    def _nudge(self) -> None:
        """Have the claim loop look for work now."""
        self._work_may_wait = True
        self._wake.set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _recheck(self, run_ids: Sequence[str] | None = None) -> None:
        """Cancel the steps (of ``run_ids``, else all) this worker no longer holds."""
        mine = [
            rid
            for rid, e in self._running.items()
            if e.executing and (run_ids is None or e.step.run_id in run_ids)
        ]
        if not mine:
            return
        try:
            held = await self._db(self.store.held_by, mine, self.id)
        except PodiumError as exc:
            log.warning("lease check failed: %s", exc)
            return
        await self._cancel_lost(set(mine) - held)

    async def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one storage transaction (see :meth:`SqlStore.call`)."""
        return await self.store.call(fn, *args, **kwargs)

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
            # more may be queued than this worker had room for
            self._work_may_wait = free <= 0 or len(claimed) == free
            if claimed and len(claimed) == free:
                continue  # there may be more; look again at once if a slot frees up
            try:
                await asyncio.wait_for(self._wake.wait(), settings.poll_seconds)
            except TimeoutError:
                if self.store.is_sqlite and self._running:
                    # SQLite tells no other process of an abort: look for it while polling
                    await self._recheck()

    def _free_slots(self) -> int:
        return self.settings.worker_concurrency - len(self._running) - self._reserved

    def _start(self, step: ClaimedStep) -> None:
        task = asyncio.create_task(self._run_step(step), name=f"step-{step.step_id}")
        self._running[step.step_record_id] = _Running(step, task)

    def _ports(self, step: ClaimedStep, progress: ProgressReporter) -> StepPorts:
        return StepPorts(
            save_runtime=self._runtime_saver(step),
            report_progress=progress,
            cache=self._cache,
            step_cache=self._step_cache,
            observers=self._observers,
            limits=self._limits,
        )

    async def _run_step(self, step: ClaimedStep) -> None:
        entry = self._running.get(step.step_record_id)
        bind_fields(  # this step's task only
            run_id=step.run_id,
            step_id=step.step_id,
            step_record_id=step.step_record_id,
            attempt=step.attempt,
        )
        log.info("step %s of run %s: attempt %d started", step.step_id, step.run_id, step.attempt)
        definition = step.definition.metadata.name
        if step.queued_at is not None:  # metrics (issue 12): queued -> running
            queue_seconds = (step.started_at - step.queued_at).total_seconds()
            metrics.step_queued(definition, step.step_id, queue_seconds)
        progress = ProgressReporter(
            lambda data: self._db(self.store.record_progress, step, data),
            label=f"step {step.step_id} of run {step.run_id}",
        )
        # the recorder claims the follow-ups of a step it records; any other end (a child
        # run launched, a cancellation, a lost lease, an error) leaves the claim loop to look
        recorded = False
        try:
            try:
                if is_orchestration_step(step):
                    # issue 11: a child run, not an agent call; once it runs the step waits
                    # for it without this worker (None: nothing to record)
                    child = await launch_child(step, self.store, self.settings, self._db)
                    if child is None:
                        return
                    outcome = child
                else:
                    outcome = await execute(step, self.agents, ports=self._ports(step, progress))
            except asyncio.CancelledError:
                reason = (entry.cancel_reason if entry else None) or "lease lost"
                log.info("step %s of run %s cancelled: %s", step.step_id, step.run_id, reason)
                return
            finally:
                await progress.close()
            if entry is not None:
                entry.executing = False
            if await self._record(step, outcome):
                recorded = True
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
            if self._work_may_wait or not recorded:
                self._wake.set()

    def _runtime_saver(self, step: ClaimedStep) -> SaveRuntime:
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
            self._loop.call_later(delay, self._nudge)
        return accepted

    # -- recording ------------------------------------------------------------------------

    async def _recorder_round(self) -> None:
        """Record finished attempts, everything that finished since the last write in one
        transaction (group commit), and start the follow-up steps that transaction claimed."""
        await self._settled_ready.wait()
        self._settled_ready.clear()
        while self._settled:
            batch, self._settled = self._settled[:_MAX_BATCH], self._settled[_MAX_BATCH:]
            try:
                await self._record_batch(batch)
            except BaseException as exc:
                # never leave an attempt waiting for an answer that will not come
                for _, done in batch:
                    if not done.done():
                        done.set_exception(
                            exc if isinstance(exc, Exception) else PodiumError(repr(exc))
                        )
                if self._settled:
                    self._settled_ready.set()  # the restarted round takes up the rest
                raise

    async def _record_batch(self, batch: list[_Pending]) -> None:
        # the slots of the steps being recorded are about to free up
        free = 0 if self._stopping.is_set() else max(self._free_slots() + len(batch), 0)
        self._reserved += free
        try:
            result = await self._write([s for s, _ in batch], claim_next=free)
        except StorageUnavailable as exc:
            self._work_may_wait = True  # nothing was claimed for the slots these free
            await self._keep_for_later(batch, exc)
            return
        except Exception as exc:
            self._work_may_wait = True
            # one bad row must not fail its neighbours: record the halves apart
            log.warning(
                "group commit of %d settlement(s) failed (%s); recording them apart",
                len(batch),
                exc,
            )
            await self._record_apart(batch)
            return
        finally:
            self._reserved -= free
        self._record_backoff.reset()
        if free and len(result.claimed) >= free:
            self._work_may_wait = True  # the settled runs may have more than it took
        self._deliver(batch, result)

    async def _keep_for_later(self, batch: list[_Pending], exc: Exception) -> None:
        """The database is away: keep the results and try again with backoff (D6). A claim
        stays current until it is reclaimed, which needs the database too, and fencing
        rejects a write that comes too late; meanwhile later results join the batch."""
        self._settled[:0] = batch
        if not self._record_backoff.failing:
            log.warning(
                "recording %d finished attempt(s) failed; keeping them and retrying with "
                "backoff: %s",
                len(batch),
                exc,
            )
        await asyncio.sleep(self._record_backoff.next())

    async def _write(self, settlements: list[Settlement], *, claim_next: int = 0) -> Recorded:
        """One group-commit transaction (never at the same time as a lease renewal)."""
        async with self._lease_writes:
            return await self._db(
                self.store.record,
                settlements,
                worker_id=self.id,
                claim_next=claim_next,
                lease_seconds=self.settings.lease_seconds,
            )

    async def _record_apart(self, batch: list[_Pending]) -> None:
        """Record a batch whose write failed: each half in its own transaction, halving
        again where a write fails, down to the one settlement that is refused (about
        2·log2(n) transactions for one bad row among n)."""
        if len(batch) == 1:
            await self._record_alone(batch[0])
            return
        middle = len(batch) // 2
        for half in (batch[:middle], batch[middle:]):
            if len(half) == 1:
                await self._record_alone(half[0])
                continue
            try:
                result = await self._write([s for s, _ in half])
            except StorageUnavailable as exc:
                await self._keep_for_later(half, exc)
            except Exception:
                await self._record_apart(half)
            else:
                self._deliver(half, result)

    async def _record_alone(self, item: _Pending) -> None:
        """Record one settlement in its own transaction; if the database refuses it, record
        its step's failure instead (:func:`unrecordable`)."""
        settlement, done = item
        step = settlement.step
        current: Settlement | None = settlement
        while current is not None:
            try:
                result = await self._write([current])
            except StorageUnavailable as exc:
                await self._keep_for_later([(current, done)], exc)
                return
            except Exception as exc:
                log.exception(
                    "the result of step %s of run %s (attempt %d) cannot be recorded",
                    step.step_id,
                    step.run_id,
                    step.attempt,
                )
                current = unrecordable(settlement, exc) if current is settlement else None
                continue
            self._deliver([(current, done)], result)
            return
        if not done.done():
            done.set_exception(PodiumError(f"step {step.step_id}: nothing could be recorded"))

    def _deliver(self, batch: list[_Pending], result: Recorded) -> None:
        lost = set(result.lost)
        for settlement, done in batch:
            if not done.done():
                done.set_result(settlement.step.step_record_id not in lost)
        self.completed += len(batch) - len(lost)
        for claimed in result.claimed:
            self._start(claimed)

    # -- leases ---------------------------------------------------------------------------

    async def _heartbeat_round(self) -> None:
        # the first renewal is due one interval after the start (the claim set the lease);
        # after a failed round the next one waits its interval too: two intervals and the
        # backoff stay well inside the lease (three intervals by default). While the
        # database is away, renewals are retried sooner (backoff), so that once it is back
        # leases are renewed before sweepers count them (D6).
        await asyncio.sleep(self._heartbeat_delay)
        self._heartbeat_delay = self.settings.heartbeat_interval
        # only the steps running now: one claimed while the renewal is under way is not
        # in its answer, and must not be taken for lost
        mine = list(self._running)
        try:
            async with self._lease_writes:
                held = await self._db(
                    self.store.renew_leases,
                    worker_id=self.id,
                    step_record_ids=mine,
                    lease_seconds=self.settings.lease_seconds,
                )
        except StorageUnavailable as exc:
            if not self._heartbeat_backoff.failing:
                log.warning("heartbeat failed, retrying with backoff: %s", exc)
            self._heartbeat_delay = self._heartbeat_backoff.next()
        except PodiumError as exc:
            log.warning("heartbeat failed: %s", exc)
        else:
            self._heartbeat_backoff.reset()
            await self._cancel_lost(set(mine) - held)

    async def _cancel_lost(self, lost: set[str]) -> None:
        """Stop the agent calls of steps this worker no longer holds (aborted, timed out,
        reclaimed), saying why in the log."""
        for record_id in lost:
            entry = self._running.get(record_id)
            if entry is None or not entry.executing:
                continue
            if entry.cancel_reason is None:
                entry.cancel_reason = await self._why_lost(record_id)
            if entry.executing:
                entry.task.cancel()

    def outage_grace(self) -> float:
        """How long after this process last found the database away the sweeper waits
        before taking steps back: a heartbeat interval plus two retries, the time live
        workers need to renew the leases the outage let lapse (D6)."""
        return self.settings.heartbeat_interval + 2 * _OUTAGE_BACKOFF_CAP

    async def _why_lost(self, step_record_id: str) -> str:
        try:
            record = await self._db(self.store.get_step, step_record_id)
        except PodiumError:
            return "lease lost"
        if record.status == "aborted":
            return "run aborted"
        code = (record.error or {}).get("code")
        if record.status == "failed" and code == ErrorCode.RUN_TIMEOUT:
            return "run deadline passed"
        if record.status == "running" and record.lease_owner != self.id:
            return f"lease lost (now held by {record.lease_owner})"
        return f"lease lost (step {record.status})"

    async def _sweep_round(self) -> None:
        try:
            reclaimed: list[tuple[str, str]] = []
            if self.store.unavailable_within(self.outage_grace()):
                self._outage_seen = True  # let live workers renew first (D6)
            elif self._outage_seen:
                # leases lapsed while nobody could renew them: a full lease again
                extended = await self._db(
                    self.store.extend_leases, lease_seconds=self.settings.lease_seconds
                )
                log.warning("database back after an outage: %d lease(s) extended", extended)
                self._outage_seen = False
            else:
                reclaimed = await self._db(
                    self.store.reclaim_expired,
                    max_recoveries=self.settings.max_recoveries,
                    live=list(self._running),
                )
            for record_id, outcome in reclaimed:
                log.warning("step record %s reclaimed after lease expiry: %s", record_id, outcome)
                metrics.recovery("worker_lost" if outcome == "failed" else "lease_expired")
            if reclaimed:
                self._nudge()
            await self._db(self.store.enforce_deadlines)
            await self._db(self.store.cache.sweep, datetime.now(UTC))  # expired entries
        except PodiumError as exc:
            log.warning("sweep failed: %s", exc)
        await asyncio.sleep(self.settings.sweep_seconds)

    async def _approval_round(self) -> None:
        """Apply ``onTimeout`` to expired approvals and warn of those about to expire; at
        start-up first (deadlines that passed while no process ran), then every second at
        most (A2: within 2 s of expiry). Errors restart the round (supervised, B2)."""
        try:
            if await self._db(self.store.expire_approvals):
                self._nudge()
        except PodiumError as exc:
            log.warning("approval sweep failed: %s", exc)
        await asyncio.sleep(min(self.settings.poll_seconds, 1.0))

    async def _drain(self, grace: float) -> None:
        """Let steps in flight finish for ``grace`` seconds; cancel the others and give
        their leases back, so that they are queued again at once."""
        tasks = [entry.task for entry in self._running.values()]
        if not tasks:
            return
        pending: set[asyncio.Task[None]] = set(tasks)
        if grace > 0:
            _done, pending = await asyncio.wait(tasks, timeout=grace)
        give_back: list[str] = []
        for record_id, entry in list(self._running.items()):
            if entry.task in pending and entry.executing:
                entry.cancel_reason = "worker stopping"
                entry.task.cancel()
                give_back.append(record_id)
        if pending:
            # cancelled calls wind down (A2A CancelTask); recordings in progress complete
            _done, late = await asyncio.wait(pending, timeout=_CANCEL_WAIT)
            for task in late:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if give_back:
            try:
                released = await self._db(
                    self.store.release_claims, worker_id=self.id, step_record_ids=give_back
                )
            except PodiumError as exc:
                log.warning("could not give back %d step(s): %s", len(give_back), exc)
            else:
                log.info("gave back %d step(s) for other workers", len(released))
