"""Following one run's event log from the database, for SSE and WebSocket clients.

The database is the source of truth: a follower reads a run's events after a sequence number
in bounded pages, and between pages it waits for a wake-up from the :class:`WakeHub`. That is
why a stream can resume anywhere (``Last-Event-ID``), on any API instance, and why a slow
client costs at most one page of memory: it simply reads later pages later.
"""

from __future__ import annotations

import dataclasses
import threading
import weakref
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import aclosing, contextmanager
from dataclasses import dataclass
from typing import Final, Protocol, TypeVar

import anyio
import anyio.to_thread

from podium.domain.limits import READABLE_DEPTH, bounded_members, check_json_value
from podium.domain.statuses import RunStatus
from podium.events.hub import WakeHub
from podium.storage.records import EventRecord, RunEnd, RunPosition

T = TypeVar("T")

PAGE_SIZE: Final = 100
# Bytes of events (as compact JSON) one follower holds at most, beyond a single event; with
# event members bounded (domain.limits.bounded_members) a page of events fits well inside.
MAX_HELD_BYTES: Final = 1024 * 1024


class EventLog(Protocol):
    """What a follower reads (synchronous calls): a run's position on each wake-up, its
    event log in pages with large values truncated, and how it ended. Never a whole run
    row: a run's parameters and outputs can be megabytes, and every client would read them
    on every wake-up (T2)."""

    def run_position(self, run_id: str) -> RunPosition: ...

    def bounded_events_after(
        self, run_id: str, after: int = 0, limit: int = 1000
    ) -> list[EventRecord]: ...

    def run_end(self, run_id: str) -> RunEnd: ...


class Keepalive:
    """Nothing happened for a while: say something, so that proxies keep the connection."""

    def __repr__(self) -> str:
        return "KEEPALIVE"


KEEPALIVE: Final = Keepalive()


@dataclass(frozen=True)
class StreamEnd:
    """The run is terminal and every one of its events has been handed out; ``run`` is
    how it ended (outputs bounded)."""

    run: RunEnd


Item = EventRecord | Keepalive | StreamEnd


def bounded_event(event: EventRecord) -> tuple[EventRecord, int]:
    """``event`` with large data members truncated, and its data's size in bytes."""
    data = bounded_members(event.data)
    size = check_json_value(data, max_depth=READABLE_DEPTH + 1, max_bytes=2**62, json_only=False)
    return (event if data == event.data else dataclasses.replace(event, data=data)), size


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

    Memory: at most one page (``page_size`` events, and at most ``max_held_bytes`` of them
    beyond the first) is held, and the next page is only read when the consumer has taken the
    last event of this one. Large members of an event's data are handed out as
    ``{"truncated": true, "bytes": N}`` (the full value is in the step record), also for
    events stored before events were bounded; see :func:`bounded_event`. Each wake-up reads
    the run's status and last sequence only, and the log only when it grew; the run's
    outputs are read once, bounded, for the :class:`StreamEnd`.

    Wake-ups (see :class:`WakeHub`)
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
        max_held_bytes: int = MAX_HELD_BYTES,
    ) -> None:
        if keepalive <= 0 or recheck <= 0 or page_size < 1:
            raise ValueError("keepalive and recheck must be positive, page_size at least 1")
        self.log = log
        self.hub = hub
        self.run_id = run_id
        self.keepalive = keepalive
        self.recheck = recheck
        self.page_size = page_size
        self.max_held_bytes = max_held_bytes
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
                run = await self._read(self.log.run_position, self.run_id)
                terminal = RunStatus(run.status).terminal
                # the run's last sequence commits with its events: nothing new, no read
                if terminal or run.last_sequence > self.position:
                    async with aclosing(self._drain()) as events:
                        async for event in events:
                            yield event
                            idle_since = anyio.current_time()
                if terminal:
                    yield StreamEnd(await self._read(self.log.run_end, self.run_id))
                    return
                now = anyio.current_time()
                keepalive_at = idle_since + self.keepalive
                await wake.wait(min(keepalive_at - now, self.recheck))
                if anyio.current_time() >= keepalive_at:
                    yield KEEPALIVE
                    idle_since = anyio.current_time()

    async def _drain(self) -> AsyncGenerator[EventRecord, None]:
        """Every stored event after :attr:`position`, one bounded page at a time."""
        while True:
            page, complete = await self._read(self._bounded_page, self.position)
            self.held = len(page)
            for event in page:
                self.held -= 1
                self.position = event.sequence
                yield event
            if complete:
                return

    def _bounded_page(self, after: int) -> tuple[list[EventRecord], bool]:
        """The next events after ``after``, bounded (in a worker thread, so the raw page is
        dropped before the consumer waits); True when it reached the end of the log."""
        raw = self.log.bounded_events_after(self.run_id, after, self.page_size)
        page: list[EventRecord] = []
        held = 0
        for event in raw:
            bounded, size = bounded_event(event)
            if page and held + size > self.max_held_bytes:
                return page, False  # the rest is read again when these are out
            page.append(bounded)
            held += size
        return page, len(raw) < self.page_size

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
