"""Storage: migrations match the schema, SQLite is opened as the engine needs."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from podium.storage import migrate
from podium.storage.store import SqlStore
from podium.storage.tables import metadata


def test_migrations_produce_exactly_the_declared_schema(db_url: str) -> None:
    store = SqlStore.open(db_url)
    try:
        with store.db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == []
        assert migrate.is_current(store.db)
    finally:
        store.close()


def test_migrating_twice_changes_nothing(db_url: str) -> None:
    store = SqlStore.open(db_url)
    try:
        before = migrate.current_revision(store.db)
        store.migrate()
        assert migrate.current_revision(store.db) == before == migrate.head_revision(store.db)
    finally:
        store.close()


def test_sqlite_is_opened_with_wal_and_a_busy_timeout(sqlite_url: str) -> None:
    store = SqlStore.open(sqlite_url)
    try:
        with store.db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        store.close()


def test_times_come_back_in_utc(db_url: str) -> None:
    from datetime import UTC, datetime, timedelta, timezone

    from podium.storage.tables import workers

    store = SqlStore.open(db_url)
    try:
        local = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
        store.db.write(
            lambda c: c.execute(
                workers.insert().values(
                    id="w",
                    hostname="h",
                    pid=1,
                    concurrency=1,
                    started_at=local,
                    heartbeat_at=local,
                )
            )
        )
        with store.db.read() as conn:
            got = conn.execute(sa.select(workers.c.started_at)).scalar_one()
        assert got == local
        assert got.tzinfo == UTC
    finally:
        store.close()


def test_event_rows_read_back_as_a_core_insert_writes_them(db_url: str) -> None:
    """event_rows.insert_events (the engine's raw multi-row INSERT) stores what a Core
    ``insert()`` of the same rows stores: ids, order, UTC times, JSON data and NULLs."""
    from datetime import UTC, datetime, timedelta, timezone

    from podium.storage.event_rows import insert_events
    from podium.storage.tables import events

    store = SqlStore.open(db_url)
    try:
        when = datetime(2026, 3, 4, 5, 6, 7, 89, tzinfo=timezone(timedelta(hours=2)))
        data = {"text": "é ü \u2603", "n": [1, 2.5, None, True], "nested": {"a": {"b": "c"}}}

        def rows(run: str, count: int) -> list[dict[str, object]]:
            return [
                {
                    "id": f"{run}-{i}",
                    "run_id": run,
                    "sequence": i + 1,
                    "type": "orchestration.step.completed",
                    "organization_slug": "acme",
                    "timestamp": when + timedelta(microseconds=i),
                    "step_id": None if i % 2 else f"s{i}",
                    "step_record_id": None,
                    "data": {**data, "i": i},
                }
                for i in range(count)
            ]

        with store.db.engine.begin() as conn:
            conn.execute(events.insert(), rows("core", 150))
            insert_events(conn, rows("raw", 150))  # two statements: 100 rows, then 50
        with store.db.engine.connect() as conn:
            read = {
                run: [
                    dict(r._mapping)
                    for r in conn.execute(
                        sa.select(events)
                        .where(events.c.run_id == run)
                        .order_by(events.c.timestamp, events.c.sequence)
                    )
                ]
                for run in ("core", "raw")
            }
            # on SQLite times are text: the raw rows must sort and compare like Core's
            same_time = conn.execute(
                sa.select(sa.func.count())
                .select_from(events)
                .where(events.c.timestamp == when + timedelta(microseconds=3))
            ).scalar_one()
        assert len(read["raw"]) == 150
        assert same_time == 2
        for core, raw in zip(read["core"], read["raw"], strict=True):
            assert {**raw, "id": core["id"], "run_id": "core"} == core
        assert read["raw"][0]["timestamp"] == when.astimezone(UTC)
    finally:
        store.close()
