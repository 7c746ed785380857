"""Following one run's event log from the database, for SSE and WebSocket clients.

The database is the source of truth: a follower reads a run's events after a sequence number
in bounded pages, and between pages it waits for a wake-up from the :class:`WakeHub`. That is
why a stream can resume anywhere (``Last-Event-ID``), on any API instance, and why a slow
client costs at most one page of memory: it simply reads later pages later.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import aclosing, contextmanager
from dataclasses import dataclass
from typing import Final, Protocol, TypeVar

import anyio
import anyio.to_thread

from podium.domain.statuses import RunStatus
from podium.events.hub import WakeHub
from podium.storage.records import EventRecord, RunRecord

T = TypeVar("T")

PAGE_SIZE: Final = 100


class EventLog(Protocol):
    """What a follower reads: the store's run row and event log (synchronous calls)."""

    def get_run(self, run_id: str, organization: str | None = None) -> RunRecord: ...

    def events_after(self, run_id: str, after: int = 0, limit: int = 1000) -> list[EventRecord]: ...


class Keepalive:
    """Nothing happened for a while: say something, so that proxies keep the connection."""

    def __repr__(self) -> str:
        return "KEEPALIVE"


KEEPALIVE: Final = Keepalive()


@dataclass(frozen=True)
class StreamEnd:
    """The run is terminal and every one of its events has been handed out; ``run`` is
    its final state."""

    run: RunRecord


Item = EventRecord | Keepalive | StreamEnd

_active: weakref.WeakSet[EventFollower] = weakref.WeakSet()
_active_lock = threading.Lock()


def active_followers(run_id: str | None = None) -> list[EventFollower]:
    """Followers of this process that are streaming now (of ``run_id``, or all); for
    diagnostics and tests."""
    with _active_lock:
        found = list(_active)
    return [f for f in found if run_id is None or f.run_id == run_id]


class EventFollower:
    """One client's view of one run's event log, from sequence ``after`` on.

    :meth:`items` yields every event with a larger sequence exactly once and in order: first
    those already stored, then, while the run lives, each new one soon after it commits. It
    yields :data:`KEEPALIVE` whenever it handed out nothing for ``keepalive`` seconds, and
    ends with one :class:`StreamEnd` once the run is terminal (completed, failed or aborted)
    and all its events are out.

    Memory: at most one page (``page_size`` events) is held, and the next page is only read
    when the consumer has taken the last event of this one. Wake-ups (see :class:`WakeHub`)
    say when to look again; without one the log is read again every ``recheck`` seconds
    anyway, which covers writers that cannot wake this process (SQLite in another process)
    and wake-ups lost with a dropped LISTEN connection.
    """

    def __init__(
        self,
        log: EventLog,
        hub: WakeHub,
        run_id: str,
        *,
        after: int = 0,
        keepalive: float,
        recheck: float,
        page_size: int = PAGE_SIZE,
    ) -> None:
        if keepalive <= 0 or recheck <= 0 or page_size < 1:
            raise ValueError("keepalive and recheck must be positive, page_size at least 1")
        self.log = log
        self.hub = hub
        self.run_id = run_id
        self.keepalive = keepalive
        self.recheck = recheck
        self.page_size = page_size
        self.position = after  # the sequence of the last event handed out
        self.held = 0  # events read from the database and not yet handed out

    async def items(self) -> AsyncGenerator[Item, None]:
        """The stream described in the class docstring. Close it (``aclosing``) when the
        client goes away early."""
        with self.hub.subscribe(self.run_id) as wake, self._registered():
            idle_since = anyio.current_time()
            while True:
                # the status is read before the log: once it is terminal, a log read after it
                # holds every event the run will ever have (they commit together)
                run = await self._read(self.log.get_run, self.run_id)
                async with aclosing(self._drain()) as events:
                    async for event in events:
                        yield event
                        idle_since = anyio.current_time()
                if RunStatus(run.status).terminal:
                    yield StreamEnd(run)
                    return
                now = anyio.current_time()
                keepalive_at = idle_since + self.keepalive
                await wake.wait(min(keepalive_at - now, self.recheck))
                if anyio.current_time() >= keepalive_at:
                    yield KEEPALIVE
                    idle_since = anyio.current_time()

    async def _drain(self) -> AsyncGenerator[EventRecord, None]:
        """Every stored event after :attr:`position`, one page at a time."""
        while True:
            page = await self._read(
                self.log.events_after, self.run_id, self.position, self.page_size
            )
            self.held = len(page)
            for event in page:
                self.held -= 1
                self.position = event.sequence
                yield event
            if len(page) < self.page_size:
                return

    @staticmethod
    async def _read(fn: Callable[..., T], *args: object) -> T:
        return await anyio.to_thread.run_sync(fn, *args)

    @contextmanager
    def _registered(self) -> Iterator[None]:
        with _active_lock:
            _active.add(self)
        try:
            yield
        finally:
            with _active_lock:
                _active.discard(self)
