"""Wake-ups for live streams: the store's wake-ups, turned into per-run notifications for
coroutines of any event loop of this process.

A wake-up only says "look again": nothing is carried in it, and a stream reads what is new
from the database (the source of truth, shared by every API instance). The store calls its
listeners from whatever thread committed (or, on PostgreSQL, from its LISTEN thread for
commits of other processes); the hub hands each wake-up to the right loop with
``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Final, Protocol

# Payloads the storage layer sends (see podium.storage.runtx): ``events:<runId>`` when the
# run's event log grew, ``run:<runId>:<status>`` when its status changed, and ``reconnected``
# when the LISTEN connection came back and may have missed some.
EVENTS_PREFIX: Final = "events:"
RUN_PREFIX: Final = "run:"
RECONNECTED: Final = "reconnected"


class WakeSource(Protocol):
    """What the hub needs from the store: its wake-up listeners."""

    def add_listener(self, listener: Callable[[str], None]) -> None: ...

    def remove_listener(self, listener: Callable[[str], None]) -> None: ...


class EveryRun:
    """Marker: a wake-up for every run (after a LISTEN reconnect)."""


EVERY_RUN: Final = EveryRun()


def woken_run(payload: str) -> str | EveryRun | None:
    """The run a wake-up payload is about, :data:`EVERY_RUN`, or None (not about runs)."""
    if payload.startswith(EVENTS_PREFIX):
        return payload[len(EVENTS_PREFIX) :] or None
    if payload.startswith(RUN_PREFIX):
        run_id, _, _status = payload[len(RUN_PREFIX) :].partition(":")
        return run_id or None
    if payload == RECONNECTED:
        return EVERY_RUN
    return None


class Subscription:
    """One consumer's wake-up flag for one run, on the event loop that subscribed.

    :meth:`wake` may be called from any thread. Wake-ups that arrive before the consumer
    looks coalesce into one: a subscription holds a flag, never a queue, so its memory is the
    same however fast a run's events come and however slowly its consumer reads.
    """

    def __init__(self, hub: WakeHub, run_id: str, loop: asyncio.AbstractEventLoop) -> None:
        self.run_id = run_id
        self._hub = hub
        self._loop = loop
        self._flag = asyncio.Event()
        # a set() already on its way to the loop; further wake-ups add nothing to it
        self._scheduled = False

    def wake(self) -> None:
        """Set the flag (from any thread)."""
        if self._scheduled:
            return
        self._scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._set)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            self._scheduled = False

    def _set(self) -> None:
        self._scheduled = False
        self._flag.set()

    async def wait(self, seconds: float) -> bool:
        """Wait until woken, at most ``seconds``; True when woken.

        The flag is cleared on return, so a wake-up that arrives while the caller reads the
        database is kept for its next wait: no wake-up is lost between two reads.
        """
        if not self._flag.is_set():
            try:
                async with asyncio.timeout(max(0.0, seconds)):
                    await self._flag.wait()
            except TimeoutError:
                return False
        self._flag.clear()
        return True

    def close(self) -> None:
        """Stop receiving wake-ups (idempotent)."""
        self._hub.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class WakeHub:
    """Per-run wake-up subscriptions over one store. Thread-safe; it listens to the store
    only while at least one subscription is open."""

    def __init__(self, source: WakeSource) -> None:
        self._source = source
        self._lock = threading.Lock()
        self._by_run: dict[str, set[Subscription]] = {}
        self._listening = False

    def subscribe(self, run_id: str) -> Subscription:
        """A subscription to ``run_id`` for the running event loop; close it when done."""
        subscription = Subscription(self, run_id, asyncio.get_running_loop())
        with self._lock:
            self._by_run.setdefault(run_id, set()).add(subscription)
            if not self._listening:
                self._listening = True
                self._source.add_listener(self._on_wakeup)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            found = self._by_run.get(subscription.run_id)
            if found is None or subscription not in found:
                return
            found.discard(subscription)
            if not found:
                del self._by_run[subscription.run_id]
            if not self._by_run and self._listening:
                self._listening = False
                self._source.remove_listener(self._on_wakeup)

    def subscriptions(self, run_id: str | None = None) -> int:
        """How many subscriptions are open (to ``run_id``, or in all)."""
        with self._lock:
            if run_id is not None:
                return len(self._by_run.get(run_id, ()))
            return sum(len(s) for s in self._by_run.values())

    def _on_wakeup(self, payload: str) -> None:
        """The store's listener; called from any thread."""
        target = woken_run(payload)
        if target is None:
            return
        with self._lock:
            if isinstance(target, EveryRun):
                woken = [s for subs in self._by_run.values() for s in subs]
            else:
                woken = list(self._by_run.get(target, ()))
        for subscription in woken:
            subscription.wake()
