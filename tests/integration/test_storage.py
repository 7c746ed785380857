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
