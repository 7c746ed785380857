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


ONE_STEP = """
metadata: {name: listed, version: 1.0.0}
orchestration:
  steps:
    - {id: a, agent: noop}
"""


def test_the_runs_list_merges_statuses_newest_first_page_by_page(db_url: str) -> None:
    from podium.domain.definition import parse_definition
    from podium.engine.launcher import launch
    from podium.storage.tables import runs

    store = SqlStore.open(db_url)
    try:
        definition = parse_definition(ONE_STEP)
        statuses = ["completed", "failed", "aborted", "running"]
        ids = {}
        for i in range(11):
            run_id = launch(store, definition, {}, organization="acme")
            ids[run_id] = statuses[i % 4]
        launch(store, definition, {}, organization="globex")
        for run_id, status in ids.items():
            store.db.write(
                lambda c, run_id=run_id, status=status: c.execute(
                    sa.update(runs).where(runs.c.id == run_id).values(status=status)
                )
            )
        wanted = ["failed", "completed", "checkpoint"]  # one status no run has
        expected = sorted((r for r, s in ids.items() if s in wanted), reverse=True)
        seen: list[str] = []
        cursor = None
        while True:
            page = store.list_runs(organization="acme", statuses=wanted, before_id=cursor, limit=2)
            seen += [r.id for r in page]
            if len(page) < 2:
                break
            cursor = page[-1].id
        assert seen == expected
        assert {r.status for r in store.list_runs(organization="acme", statuses=wanted)} == {
            "failed",
            "completed",
        }
    finally:
        store.close()
