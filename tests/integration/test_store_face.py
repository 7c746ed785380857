"""The store's face to the layers above: the async call, schema status and worker liveness,
so that nothing outside ``storage/`` reaches through ``store.db``."""

from __future__ import annotations

import threading
from pathlib import Path

from podium.storage.database import Database
from podium.storage.store import SqlStore


def test_schema_status_of_a_migrated_and_an_empty_database(db_url: str, tmp_path: Path) -> None:
    store = SqlStore.open(db_url)
    empty = SqlStore(Database(f"sqlite:///{tmp_path}/empty.db"))
    try:
        status = store.schema_status()
        assert status.up_to_date
        assert status.current == status.head is not None
        bare = empty.schema_status()
        assert bare.current is None
        assert bare.head == status.head
        assert not bare.up_to_date
    finally:
        store.close()
        empty.close()


def test_is_sqlite_names_the_dialect(db_url: str) -> None:
    store = SqlStore.open(db_url)
    try:
        assert store.is_sqlite == db_url.startswith("sqlite")
    finally:
        store.close()


def test_describe_hides_the_password() -> None:
    store = SqlStore(Database("postgresql://podium:s3cret@127.0.0.1:1/podium"))
    try:
        assert "s3cret" not in store.describe()
        assert "127.0.0.1:1/podium" in store.describe()
    finally:
        store.close()


def test_live_workers_leave_out_stopped_and_silent_ones(db_url: str) -> None:
    store = SqlStore.open(db_url)
    try:
        store.register_worker("alive", 2)
        store.register_worker("stopped", 2)
        store.stop_worker("stopped")
        assert [w.id for w in store.live_workers(silent_for=60)] == ["alive"]
        # a worker is silent once its last heartbeat is older than the window
        assert store.live_workers(silent_for=-1) == []
    finally:
        store.close()


async def test_call_runs_inline_on_sqlite_and_in_a_thread_on_postgresql(db_url: str) -> None:
    store = SqlStore.open(db_url)
    try:
        caller = threading.get_ident()
        ran_on = await store.call(threading.get_ident)
        assert (ran_on == caller) == store.is_sqlite
        assert await store.call(store.list_workers) == []
    finally:
        store.close()
