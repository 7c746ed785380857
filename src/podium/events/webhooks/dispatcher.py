"""The webhook dispatcher: a worker-side loop that sends the outbox (spec section 11).

Each cycle is one transaction that records the attempts finished since the last one, gives
back what was not sent, and claims the next deliveries (:meth:`WebhookStore.cycle`), like
the engine's group commit. A claim is a *chain* per (run, endpoint) queue: its head and up
to :data:`CHAIN_LIMIT` due deliveries behind it (:mod:`podium.storage.dispatch`). A chain
sends them one after the other, each only once the one before it was delivered, and gives
back the rest as soon as one is not; so a run's events do not wait a transaction each, and
an endpoint's ``max_in_flight`` caps its chains. It wakes when events are written (the
``events:`` wake-up: NOTIFY on PostgreSQL, in-process on SQLite), when a delivery is
replayed, when a chain ends, and otherwise every ``poll_seconds`` (retries that came due). On
PostgreSQL any number of dispatchers share the outbox (claims skip locked rows and carry a
lease); on SQLite the one working process runs it.

Retries (target W3): the delays of ``PODIUM_WEBHOOK_RETRY_SCHEDULE`` spread by ±20 % jitter,
or the receiver's ``Retry-After`` on 429/503; after the last attempt the delivery is dead.
A 410 disables the endpoint at once, and so does failing for longer than
``PODIUM_WEBHOOK_DISABLE_AFTER``; both write ``orchestration.webhook.disabled`` and log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from podium import metrics
from podium.domain.ids import new_id
from podium.domain.webhooks import DeliveryStatus
from podium.errors import PodiumError
from podium.events.webhooks import payload
from podium.events.webhooks.client import Response, WebhookClient, next_delay
from podium.events.webhooks.config import WebhookSettings
from podium.net.urlguard import UrlGuard
from podium.storage.outbox import AttemptResult, ClaimedDelivery
from podium.storage.webhooks import WAKE_WEBHOOKS, WebhookStore

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

# after a wake-up, how long a cycle waits for more work to share its transaction
GATHER_SECONDS = 0.02
# deliveries a chain may take behind its head (see podium.storage.dispatch)
CHAIN_LIMIT = 32
# a chain sends its next delivery only while its lease outlasts a request by this much
LEASE_MARGIN = 1.0


def utcnow() -> datetime:
    return datetime.now(UTC)


class RateLimits:
    """Token buckets per endpoint (``rate_limit`` requests per second, burst of one second)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self.refused = False

    def admit(self, endpoint_id: str, rate: int | None) -> bool:
        if rate is None or rate <= 0:
            return True
        with self._lock:
            now = self._clock()
            tokens, at = self._buckets.get(endpoint_id, (float(rate), now))
            tokens = min(float(rate), tokens + (now - at) * rate)
            if tokens < 1.0:
                self._buckets[endpoint_id] = (tokens, now)
                self.refused = True
                return False
            self._buckets[endpoint_id] = (tokens - 1.0, now)
            return True


def decide(
    response: Response,
    attempts_made: int,
    settings: WebhookSettings,
    now: datetime,
    jitter: float,
) -> AttemptResult:
    """What one attempt (the ``attempts_made``-th) comes to."""
    if response.ok:
        return AttemptResult(DeliveryStatus.DELIVERED, status_code=response.status_code)
    common = {"status_code": response.status_code, "error": response.error, "body": response.body}
    if response.status_code == 410:  # the endpoint is disabled; resume if it is enabled again
        return AttemptResult(DeliveryStatus.FAILED, next_attempt_at=now, **common)  # type: ignore[arg-type]
    delay = next_delay(settings.retry_schedule, attempts_made, jitter)
    if delay is None:
        return AttemptResult(DeliveryStatus.DEAD, **common)  # type: ignore[arg-type]
    if response.retry_after is not None:
        delay = response.retry_after
    return AttemptResult(
        DeliveryStatus.FAILED,
        next_attempt_at=now + timedelta(seconds=delay),
        **common,  # type: ignore[arg-type]
    )


class Dispatcher:
    """Sends webhook deliveries until :meth:`stop`."""

    def __init__(
        self,
        store: WebhookStore,
        settings: WebhookSettings | None = None,
        *,
        guard: UrlGuard | None = None,
        clock: Clock = utcnow,
        jitter: Callable[[], float] = random.random,
        owner: str | None = None,
    ) -> None:
        self.store = store
        self.settings = settings or WebhookSettings.from_env()
        self.guard = guard or UrlGuard.from_env(subject="WEBHOOK")
        self.clock = clock
        self.jitter = jitter
        self.id = owner or f"{socket.gethostname()}-wh-{new_id()[-12:]}"
        self.outcomes: Counter[str] = Counter()  # orchestration_webhook_deliveries_total
        self._limits = RateLimits()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._finished: list[tuple[ClaimedDelivery, AttemptResult]] = []
        self._released: list[ClaimedDelivery] = []
        self._chains: set[asyncio.Task[None]] = set()
        self.cycles = 0  # transactions
        self.waits = 0  # times the loop went to sleep

    # -- lifecycle --------------------------------------------------------------------------

    async def run(self) -> None:
        """Dispatch until :meth:`stop` (or cancellation); then let requests in flight finish
        (bounded) and record them."""
        self._loop = asyncio.get_running_loop()
        client = WebhookClient(self.guard, timeout=self.settings.timeout_seconds)
        self.store.add_listener(self._on_wakeup)
        self._wake.set()  # deliveries may be waiting from before this start
        try:
            while not self._stopping.is_set():
                await self._wait()
                if self._stopping.is_set():
                    break
                try:
                    await self._cycle(client)
                except (PodiumError, OSError) as exc:
                    log.warning("webhook dispatcher cycle failed: %s", exc)
                    await self._sleep(self.settings.poll_seconds)
                except Exception:  # a bug must not stop deliveries for good (B2)
                    log.exception("webhook dispatcher cycle failed")
                    await self._sleep(self.settings.poll_seconds)
        finally:
            self._stopping.set()  # chains send nothing more
            self.store.remove_listener(self._on_wakeup)
            await self._drain()
            await client.aclose()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def wake(self) -> None:
        """Look for due deliveries now (tests advance a controlled clock, then call this)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def _on_wakeup(self, message: str) -> None:
        if message.startswith("events:"):
            known = self.store.known_subscriptions()
            if known == ():
                return  # no endpoint: the new events have no deliveries
        elif message not in (WAKE_WEBHOOKS, "reconnected"):
            return
        self.wake()

    async def _sleep(self, seconds: float) -> bool:
        """Wait for a wake-up, at most ``seconds``; whether one came. (Not ``wait_for``: on
        Python 3.11 it can swallow a cancellation that races its timeout.)"""
        try:
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        except TimeoutError:
            return False
        return True

    async def _wait(self) -> None:
        """Sleep until a wake-up or the poll; then gather a little more work."""
        throttled = self._limits.refused
        self._limits.refused = False
        self.waits += 1
        woken = await self._sleep(0.2 if throttled else self.settings.poll_seconds)
        if woken and not self._stopping.is_set():
            # gather what else finishes or arrives meanwhile: one transaction for all of it
            await asyncio.sleep(GATHER_SECONDS)
        self._wake.clear()

    # -- one cycle --------------------------------------------------------------------------

    async def _cycle(self, client: WebhookClient) -> None:
        finished, self._finished = self._finished, []
        released, self._released = self._released, []
        free = self.settings.concurrency - len(self._chains)
        now = self.clock()
        idle = not finished and not released
        if idle and (free <= 0 or not await asyncio.to_thread(self.store.has_due, now)):
            return
        try:
            chains = await asyncio.to_thread(
                self.store.cycle,
                finished,
                released,
                owner=self.id,
                lease_seconds=self.settings.lease_seconds,
                limit=free,
                chain_limit=CHAIN_LIMIT,
                now=now,
                admit=self._limits.admit,
            )
        except BaseException:
            self._finished = finished + self._finished  # record them next time
            self._released = released + self._released
            raise
        self.cycles += 1
        self._count(finished)
        for chain in chains:
            task = asyncio.create_task(
                self._send_chain(client, chain, time.monotonic()), name=f"webhook-{chain[0].id}"
            )
            self._chains.add(task)
            task.add_done_callback(self._chains.discard)
        if chains and len(chains) >= free:
            self._wake.set()  # more may be due at once: look again without waiting

    async def _send_chain(
        self, client: WebhookClient, chain: list[ClaimedDelivery], claimed_at: float
    ) -> None:
        """Send a chain's deliveries in order, each once the one before it was delivered;
        give back the rest when one is not, or when the lease could end mid-request."""
        unsent = list(chain)
        in_flight = False
        try:
            while unsent:
                if len(unsent) < len(chain) and not self._may_go_on(claimed_at):
                    break
                in_flight = True
                result = await self._attempt(client, unsent[0])
                in_flight = False
                self._finished.append((unsent.pop(0), result))
                if result.status is not DeliveryStatus.DELIVERED:
                    break
        finally:
            # cancelled mid-request, that one may have been sent: it keeps its lease
            self._released.extend(unsent[1:] if in_flight else unsent)
            self._wake.set()

    def _may_go_on(self, claimed_at: float) -> bool:
        """Whether a chain may send its next delivery: not stopping, and the lease outlasts
        one more request (another dispatcher may take the delivery once it ends)."""
        budget = self.settings.lease_seconds - self.settings.timeout_seconds - LEASE_MARGIN
        return not self._stopping.is_set() and time.monotonic() - claimed_at < budget

    async def _attempt(self, client: WebhookClient, delivery: ClaimedDelivery) -> AttemptResult:
        try:
            body = payload.body(delivery.event, self.settings.public_url)
            response = await client.send(delivery.url, delivery.secrets, delivery.event.id, body)
        except Exception as exc:  # never lose the lease silently: record the failure
            log.exception("webhook delivery %s failed unexpectedly", delivery.id)
            response = Response(None, f"internal error: {type(exc).__name__}")
        now = self.clock()
        try:
            result = decide(response, delivery.attempts + 1, self.settings, now, self.jitter())
            self._log(delivery, result)
            if response.status_code == 410:
                await self._disable(delivery, f"the receiver answered 410 Gone for {delivery.url}")
            elif not response.ok:
                await self._disable_if_failing(delivery, now)
        except Exception:  # the attempt still gets recorded: retry it like a failure
            log.exception("webhook delivery %s: recording the attempt failed", delivery.id)
            first_delay = self.settings.retry_schedule[0] if self.settings.retry_schedule else 5.0
            retry = now + timedelta(seconds=first_delay)
            result = AttemptResult(
                DeliveryStatus.DELIVERED if response.ok else DeliveryStatus.FAILED,
                next_attempt_at=None if response.ok else retry,
                status_code=response.status_code,
                error=response.error,
            )
        return result

    def _count(self, recorded: list[tuple[ClaimedDelivery, AttemptResult]]) -> None:
        for _, result in recorded:
            self.outcomes[result.status.value] += 1
            metrics.webhook_delivery(result.status.value)  # counted by the sending process

    def _log(self, delivery: ClaimedDelivery, result: AttemptResult) -> None:
        extra = {
            "delivery_id": delivery.id,
            "endpoint_id": delivery.endpoint_id,
            "run_id": delivery.event.run_id,
            "sequence": delivery.event.sequence,
            "attempt": delivery.attempts + 1,
            "status_code": result.status_code,
        }
        if result.status is DeliveryStatus.DELIVERED:
            log.debug("webhook delivered", extra=extra)
        elif result.status is DeliveryStatus.DEAD:
            log.warning(
                "webhook %s dead after %d attempts: %s",
                delivery.id,
                delivery.attempts + 1,
                result.error,
                extra=extra,
            )
        else:
            log.info(
                "webhook %s attempt %d failed: %s",
                delivery.id,
                delivery.attempts + 1,
                result.error,
                extra=extra,
            )

    async def _disable(self, delivery: ClaimedDelivery, reason: str) -> None:
        done = await asyncio.to_thread(
            self.store.disable_endpoint, delivery.endpoint_id, reason, delivery.event.run_id
        )
        if done:
            log.warning(
                "webhook endpoint %s disabled: %s",
                delivery.endpoint_id,
                reason,
                extra={"endpoint_id": delivery.endpoint_id, "run_id": delivery.event.run_id},
            )

    async def _disable_if_failing(self, delivery: ClaimedDelivery, now: datetime) -> None:
        since = await asyncio.to_thread(self.store.failing_since, delivery.endpoint_id)
        limit = self.settings.disable_after_seconds
        if since is not None and (now - since).total_seconds() > limit:
            await self._disable(
                delivery,
                f"failing continuously for more than {limit:g} s (since {since.isoformat()})",
            )

    async def _drain(self) -> None:
        if self._chains:
            await asyncio.wait(set(self._chains), timeout=self.settings.timeout_seconds + 1)
        for task in list(self._chains):
            task.cancel()
        if self._chains:
            await asyncio.wait(set(self._chains))
        finished, self._finished = self._finished, []
        released, self._released = self._released, []
        if finished or released:
            with contextlib.suppress(PodiumError, OSError):
                await asyncio.to_thread(
                    self.store.cycle,
                    finished,
                    released,
                    owner=self.id,
                    lease_seconds=self.settings.lease_seconds,
                    limit=0,
                )
                self._count(finished)


class DispatcherTask:
    """A :class:`Dispatcher` running as a task beside a worker (``podium worker``, the
    embedded worker of ``podium serve``)."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def start(
        cls, webhooks: WebhookStore, settings: WebhookSettings | None = None
    ) -> DispatcherTask:
        """Start dispatching on the running loop."""
        running = cls(Dispatcher(webhooks, settings))
        running._task = asyncio.create_task(running.dispatcher.run(), name="podium-webhooks")
        return running

    async def close(self) -> None:
        """Stop; requests in flight get their timeout to finish."""
        self.dispatcher.stop()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
