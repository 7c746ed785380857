"""The pieces under the streams, without a server or a database: :class:`WakeHub` and
:class:`EventFollower` over an in-memory event log."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import replace
from datetime import UTC, datetime

from podium.events import KEEPALIVE, EventFollower, StreamEnd, WakeHub
from podium.events.hub import EVERY_RUN, woken_run
from podium.storage.records import EventRecord, RunEnd, RunPosition, RunRecord

NOW = datetime.now(UTC)


class MemoryLog:
    """A run's event log and wake-ups in memory, shaped like the store."""

    def __init__(self, run_id: str = "r1") -> None:
        self.run = RunRecord(
            id=run_id,
            organization_slug="acme",
            definition_name="d",
            definition_version="1.0.0",
            status="running",
            parameters={},
            outputs=None,
            error=None,
            metadata={},
            parent_run_id=None,
            parent_step_record_id=None,
            max_parallel_steps=1,
            last_sequence=0,
            created_at=NOW,
            started_at=NOW,
            ended_at=None,
            updated_at=NOW,
            deadline_at=None,
        )
        self.events: list[EventRecord] = []
        self.listeners: list[Callable[[str], None]] = []
        self.reads = 0

    def append(self, count: int, *, status: str | None = None) -> None:
        """Commit ``count`` events (and maybe a new status), then wake the listeners."""
        for _ in range(count):
            seq = len(self.events) + 1
            self.events.append(
                EventRecord(
                    id=f"e{seq}",
                    run_id=self.run.id,
                    sequence=seq,
                    type="orchestration.step.completed",
                    organization_slug="acme",
                    timestamp=NOW,
                    step_id=None,
                    step_record_id=None,
                    data={},
                )
            )
        self.run = replace(
            self.run, last_sequence=len(self.events), status=status or self.run.status
        )
        for listener in list(self.listeners):
            listener(f"events:{self.run.id}")

    def run_position(self, run_id: str) -> RunPosition:
        return RunPosition(status=self.run.status, last_sequence=self.run.last_sequence)

    def run_end(self, run_id: str) -> RunEnd:
        run = self.run
        return RunEnd(run.id, run.status, run.last_sequence, run.outputs, run.error)

    def bounded_events_after(
        self, run_id: str, after: int = 0, limit: int = 1000
    ) -> list[EventRecord]:
        self.reads += 1
        return [e for e in self.events if e.sequence > after][:limit]

    def add_listener(self, listener: Callable[[str], None]) -> None:
        self.listeners.append(listener)

    def remove_listener(self, listener: Callable[[str], None]) -> None:
        self.listeners.remove(listener)


def test_wakeup_payloads_name_their_run() -> None:
    assert woken_run("events:r1") == "r1"
    assert woken_run("run:r1:completed") == "r1"
    assert woken_run("reconnected") is EVERY_RUN
    assert woken_run("steps") is None
    assert woken_run("events:") is None


async def test_the_hub_listens_only_while_subscribed_and_coalesces_wakeups() -> None:
    log = MemoryLog()
    hub = WakeHub(log)
    assert log.listeners == []
    with hub.subscribe("r1") as wake, hub.subscribe("r2") as other:
        assert len(log.listeners) == 1

        def many_wakeups() -> None:
            for _ in range(1000):
                log.listeners[0]("events:r1")

        thread = threading.Thread(target=many_wakeups)
        thread.start()
        await asyncio.to_thread(thread.join)
        assert await wake.wait(1.0)
        assert not await wake.wait(0.01)  # a thousand wake-ups were one
        assert not await other.wait(0.01)
        log.listeners[0]("reconnected")
        assert await other.wait(1.0)
        assert hub.subscriptions() == 2
    assert log.listeners == []
    assert hub.subscriptions() == 0


async def test_a_follower_hands_out_pages_then_live_events_then_the_end() -> None:
    log = MemoryLog()
    log.append(25)
    follower = EventFollower(
        log, WakeHub(log), "r1", after=3, keepalive=30, recheck=30, page_size=10
    )
    seen: list[int] = []
    async with asyncio.timeout(5), aclosing(follower.items()) as items:
        async for item in items:
            if isinstance(item, EventRecord):
                seen.append(item.sequence)
                assert follower.held < follower.page_size
                if item.sequence == 25:
                    log.append(5)  # committed while the client reads: woken, not polled
                if item.sequence == 30:
                    log.append(1, status="completed")
            else:
                assert isinstance(item, StreamEnd)
                assert item.run.status == "completed"
                break
    assert seen == list(range(4, 32))


async def test_an_idle_follower_sends_keepalives() -> None:
    log = MemoryLog()
    follower = EventFollower(log, WakeHub(log), "r1", keepalive=0.05, recheck=30)
    kinds = []
    async with asyncio.timeout(5), aclosing(follower.items()) as items:
        async for item in items:
            kinds.append(item)
            if len(kinds) == 3:
                break
    assert kinds == [KEEPALIVE] * 3
