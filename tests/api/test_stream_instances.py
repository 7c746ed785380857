"""Streams across API instances on PostgreSQL: two real ``podium serve`` processes on one
database, one of them API-only (``worker=False``)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from podium.storage.store import SqlStore
from tests.api.helpers import bearer
from tests.api.test_stream_support import (
    Message,
    chain,
    follow_with_random_disconnects,
    launched,
    read_sse,
    server_process,
    stored_log,
    stream_url,
)

Instances = tuple[str, str]

# the second step starts two seconds in (an event without a run status change), then takes
# a minute
SLOW_SECOND = """
metadata: {name: slow-second, version: 1.0.0}
orchestration:
  steps:
    - {id: s0, agent: sleep, input: {seconds: 2}}
    - {id: s1, agent: sleep, input: {seconds: 60}, depends_on: [s0]}
"""


@pytest.fixture
def pg_store(pg_schema_url: str) -> Iterator[SqlStore]:
    store = SqlStore.open(pg_schema_url)  # migrated here, before the servers start
    yield store
    store.close()


@pytest.fixture
def instances(pg_schema_url: str, pg_store: SqlStore) -> Iterator[Instances]:
    """Instance A (with the embedded worker) and API-only instance B. B keeps the default
    15 s keepalive, so it only learns of new events in time through NOTIFY."""
    common: dict[str, Any] = {
        "database_url": pg_schema_url,
        "require_keys": True,
        "rate_limit": 100_000,
        "poll_seconds": 0.2,
        "lease_seconds": 5.0,
    }
    with (
        server_process(common, worker=True) as a,
        server_process(common, worker=False) as b,
    ):
        yield a, b


async def test_e1_reconnecting_to_the_other_instance_each_time(
    pg_store: SqlStore, instances: Instances
) -> None:
    """E1 across instances: a client that disconnects at random points and reconnects with
    Last-Event-ID to the other instance each time sees every event exactly once, in order,
    identical to the stored log."""
    seed = random.randrange(1 << 30)
    _, key = pg_store.create_key(organization="acme", role="viewer", name="viewer")
    run_id = await launched(pg_store, chain(30))
    got = await follow_with_random_disconnects(
        list(instances), run_id, bearer(key), rng=random.Random(seed)
    )
    log = await asyncio.to_thread(stored_log, pg_store, run_id)
    context = f"seed {seed}, {got.connections} connections"
    assert [m.json() for m in got.events] == log, context
    assert [m.id for m in got.events] == [str(e["sequence"]) for e in log], context
    assert [e["sequence"] for e in log] == list(range(1, len(log) + 1))
    assert got.end is not None, context
    assert got.end.event == "complete", context
    assert got.connections >= 5, context


async def test_an_api_only_instance_is_woken_by_events_committed_elsewhere(
    pg_store: SqlStore, instances: Instances
) -> None:
    """A stream open on instance B sees a step start (an event that changes no run status)
    that instance A's worker commits, long before B's 15 s recheck would have found it."""
    _, api_only = instances
    _, key = pg_store.create_key(organization="acme", role="viewer", name="viewer")
    run_id = await launched(pg_store, SLOW_SECOND)

    def second_step_running(message: Message) -> bool:
        return message.event == "orchestration.step.running" and message.json()["stepId"] == "s1"

    async with httpx.AsyncClient(timeout=30) as client:
        async with asyncio.timeout(10):
            live, _ = await read_sse(
                client, stream_url(api_only, run_id), bearer(key), on_message=second_step_running
            )
        await asyncio.to_thread(pg_store.abort, run_id, actor="test", reason="done")
        rest, ended = await read_sse(
            client, stream_url(api_only, run_id), bearer(key) | {"Last-Event-ID": live[-1].id or ""}
        )
    # it arrived while the stream was open, not in the replay of its first read
    assert live[-1].at - live[0].at > 1.0, [(m.event, m.at) for m in live]
    assert ended
    assert rest[-1].event == "error"
    assert rest[-1].json()["status"] == "aborted"
