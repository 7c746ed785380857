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
from podium.storage.tables import webhook_deliveries
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


async def test_pending_deliveries_take_no_entry_in_the_dead_letter_index(
    store: SqlStore, webhooks: WebhookStore, endpoint: EndpointMaker, db_url: str
) -> None:
    """The index by endpoint and time holds dead letters only (migration 0011), so the
    engine's delivery rows cost its transactions one index page less; the bulk replay of
    an endpoint's dead letters still finds them through it."""
    created = endpoint()
    run = await run_to_end(store, fast_settings(db_url), definition(chain(3, seconds=0)))
    assert run.status == "completed"
    rows = webhooks.list_deliveries(None, endpoint_id=created.id, run_id=run.id)
    assert rows
    assert {r.status for r in rows} == {"pending"}
    with store.db.engine.begin() as conn:
        if store.is_sqlite:
            indexed = (
                "SELECT count(*) FROM webhook_deliveries INDEXED BY ix_webhook_deliveries_dead"
            )
            assert conn.execute(sa.text(f"{indexed} WHERE status = 'dead'")).scalar() == 0
            plan = conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT id FROM webhook_deliveries "
                "WHERE endpoint_id = ? AND status = 'dead' AND created_at >= ?",
                (created.id, "2000-01-01"),
            ).all()
            assert "ix_webhook_deliveries_dead" in str(plan)
        else:
            definition_sql = conn.execute(
                sa.text(
                    "SELECT indexdef FROM pg_indexes "
                    "WHERE indexname = :n AND schemaname = current_schema()"
                ),
                {"n": "ix_webhook_deliveries_dead"},
            ).scalar_one()
            assert "WHERE" in definition_sql
            assert "dead" in definition_sql
        first = rows[-1].id
        conn.execute(
            sa.update(webhook_deliveries)
            .where(webhook_deliveries.c.id == first)
            .values(status="dead")
        )
    assert webhooks.replay_dead(None, endpoint_id=created.id) == 1
    assert webhooks.get_delivery(first, None).status == "pending"
