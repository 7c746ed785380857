"""What the outbox costs the engine's transactions: with no endpoint, no statement at all
beyond reloading the (empty) endpoint list at most once a second; with endpoints, one
INSERT of delivery rows per transaction that writes events (on PostgreSQL inside the
events' own statement: no round trip of its own)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from podium.storage import outbox
from podium.storage.store import SqlStore
from podium.storage.webhooks import WebhookStore
from tests.api.test_stream_support import chain
from tests.support import definition, fast_settings, run_to_end
from tests.webhooks.conftest import EndpointMaker


@contextmanager
def statements(store: SqlStore) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    sa.event.listen(store.db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(store.db.engine, "before_cursor_execute", record)


async def test_no_endpoint_costs_no_statement(store: SqlStore, db_url: str) -> None:
    started = time.monotonic()
    with statements(store) as seen:
        run = await run_to_end(store, fast_settings(db_url), definition(chain(5, seconds=0)))
    assert run.status == "completed"
    seconds = time.monotonic() - started
    endpoint_reads = [s for s in seen if "webhook_endpoints" in s]
    assert len(endpoint_reads) <= seconds / outbox.CACHE_SECONDS + 2
    assert not [s for s in seen if "webhook_deliveries" in s]


async def test_one_endpoint_costs_one_insert_per_event_transaction(
    store: SqlStore, webhooks: WebhookStore, endpoint: EndpointMaker, db_url: str
) -> None:
    endpoint()
    with statements(store) as seen:
        run = await run_to_end(store, fast_settings(db_url), definition(chain(5, seconds=0)))
    assert run.status == "completed"
    both = "WITH WRITTEN AS (INSERT INTO ORCHESTRATION_EVENTS"
    writes = [s.lstrip().upper() for s in seen]
    event_inserts = [s for s in writes if s.startswith(("INSERT INTO ORCHESTRATION_EVENTS", both))]
    delivery_inserts = [
        s
        for s in writes
        if s.startswith("INSERT INTO WEBHOOK_DELIVERIES")
        or (s.startswith(both) and "INSERT INTO WEBHOOK_DELIVERIES" in s)
    ]
    assert len(delivery_inserts) == len(event_inserts) > 0
    if store.is_sqlite:
        assert not [s for s in writes if s.startswith(both)]
    else:  # one statement writes both: an endpoint adds no round trip
        assert all(s.startswith(both) for s in event_inserts)
    total = sum(1 for _ in store.events_after(run.id))
    assert sum(webhooks.status_counts().values()) == total
