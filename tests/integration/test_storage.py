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


def test_event_rows_read_back_as_a_core_insert_writes_them(db_url: str) -> None:
    """bulk.insert_events (the engine's raw multi-row INSERT) stores what a Core
    ``insert()`` of the same rows stores: ids, order, UTC times, JSON data and NULLs."""
    from datetime import UTC, datetime, timedelta, timezone

    from podium.storage.bulk import insert_events
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


def test_delivery_rows_read_back_as_a_core_insert_writes_them(db_url: str) -> None:
    """The outbox's delivery rows through bulk.DELIVERIES: what a Core insert stores, the
    columns it leaves out at their defaults (attempts 0, no lease, nothing delivered)."""
    from datetime import UTC, datetime, timedelta

    from podium.storage.bulk import DELIVERIES
    from podium.storage.tables import webhook_deliveries as D

    store = SqlStore.open(db_url)
    try:
        when = datetime(2026, 5, 6, 7, 8, 9, 10, tzinfo=UTC)

        def rows(endpoint: str) -> list[dict[str, object]]:
            return [
                {
                    "id": f"{endpoint}-{i}",
                    "endpoint_id": endpoint,
                    "organization_slug": "acme",
                    "run_id": "r1",
                    "sequence": i + 1,
                    "event_id": f"e{i}",
                    "event_type": "orchestration.step.completed",
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": when + timedelta(seconds=i),
                    "created_at": when,
                    "updated_at": when,
                }
                for i in range(120)
            ]

        with store.db.engine.begin() as conn:
            conn.execute(D.insert(), rows("core"))
            DELIVERIES.insert(conn, rows("raw"))
        with store.db.engine.connect() as conn:

            def read(endpoint: str) -> list[dict[str, object]]:
                query = sa.select(D).where(D.c.endpoint_id == endpoint).order_by(D.c.sequence)
                return [dict(r._mapping) for r in conn.execute(query)]

            core, raw = read("core"), read("raw")
            due = conn.execute(
                sa.select(sa.func.count())
                .select_from(D)
                .where(D.c.next_attempt_at <= when + timedelta(seconds=9))
            ).scalar_one()
        assert len(raw) == 120
        assert due == 20  # ten of each, compared as the dispatcher compares them
        for a, b in zip(core, raw, strict=True):
            assert {**b, "id": a["id"], "endpoint_id": "core"} == a
        assert raw[0]["lease_owner"] is None
        assert raw[0]["delivered_at"] is None
    finally:
        store.close()


def test_partial_indexes_are_partial_on_the_database_in_use(db_url: str) -> None:
    """The WHERE of a partial index reaches a dialect with its first engine (naming it in
    the Index would import the PostgreSQL dialect in every process)."""
    from sqlalchemy.schema import CreateIndex

    from podium.storage.tables import PARTIAL_INDEXES, metadata

    store = SqlStore.open(db_url)
    try:
        indexes = {i.name: i for t in metadata.tables.values() for i in t.indexes}
        for name, where in PARTIAL_INDEXES.items():
            ddl = str(CreateIndex(indexes[name]).compile(dialect=store.db.engine.dialect))
            assert ddl.endswith(f"WHERE {where}"), ddl
    finally:
        store.close()
