"""Runbook section 8 (Podium itself): workers of different versions and SQLite settings,
produced for real or injected, on both databases, with evidence, fix, and the fix resolving
it."""

from __future__ import annotations

import shlex
import shutil
import socket
import sqlite3
import subprocess
from typing import Any

import pytest
import sqlalchemy as sa

from podium import __version__
from podium.settings import Settings
from podium.storage.store import SqlStore
from podium.storage.tables import workers
from tests.doctor.conftest import execute, findings
from tests.support import fast_settings, running_worker, wait_for

VERSIONS = "podium.worker-versions"
SQLITE = "podium.sqlite-settings"


@pytest.fixture
def patient(settings: Settings) -> Settings:
    """A lease long enough that a worker registered by the test is still live when the
    doctor looks, however loaded the machine."""
    return settings.model_copy(update={"lease_seconds": 120.0})


async def test_a_worker_records_the_version_it_runs(store: SqlStore, settings: Settings) -> None:
    async with running_worker(store, settings) as worker:
        rows = await wait_for(
            store.list_workers, lambda found: any(w.id == worker.id for w in found)
        )
    [row] = [w for w in rows if w.id == worker.id]
    assert row.version == __version__


def test_workers_of_different_versions(store: SqlStore, patient: Settings) -> None:
    """A worker left on an older release beside two current ones: a warning naming it;
    restarted on the current release (the old one stopped), nothing to report."""
    store.register_worker("w-new-1", 8)
    store.register_worker("w-new-2", 8)
    assert findings(store, patient, VERSIONS) == []
    store.register_worker("w-old", 8, version="0.0.9")
    [found] = findings(store, patient, VERSIONS)
    assert found.severity == "warning"
    assert found.section == 8
    assert found.organization is None
    assert found.evidence["versions"] == {"0.0.9": ["w-old"], __version__: ["w-new-1", "w-new-2"]}
    assert found.evidence["newest"] == __version__
    where = f"{socket.gethostname()}:"
    assert list(found.evidence["olderWorkers"]) == ["w-old"]
    assert found.evidence["olderWorkers"]["w-old"].startswith(where)
    assert found.fix is not None
    assert found.fix.command.startswith(f"roll out Podium {__version__} everywhere")
    assert where in found.fix.command
    assert "podium worker" in found.fix.command
    # the fix: the old worker drains and stops, and comes back on the current release
    store.stop_worker("w-old")
    store.register_worker("w-old-restarted", 8)
    assert findings(store, patient, VERSIONS) == []


def test_a_worker_from_before_versions_were_recorded(store: SqlStore, patient: Settings) -> None:
    """A row without a version (registered before migration 0009) is older than any."""
    store.register_worker("w-current", 8)
    store.register_worker("w-ancient", 8)
    execute(store, sa.update(workers).where(workers.c.id == "w-ancient").values(version=None))
    [found] = findings(store, patient, VERSIONS)
    assert found.evidence["versions"] == {"unrecorded": ["w-ancient"], __version__: ["w-current"]}
    assert list(found.evidence["olderWorkers"]) == ["w-ancient"]
    store.stop_worker("w-ancient")
    assert findings(store, patient, VERSIONS) == []


def test_sqlite_with_no_busy_timeout(
    store: SqlStore, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PODIUM_SQLITE_BUSY_TIMEOUT_MS=0: a second writer fails at once instead of waiting.
    The fix (the setting unset, the processes restarted) resolves it. PostgreSQL has no such
    setting: nothing to report."""
    monkeypatch.setenv("PODIUM_SQLITE_BUSY_TIMEOUT_MS", "0")
    impatient = fast_settings(db_url, sqlite_busy_timeout_ms=0)
    opened = SqlStore.open(db_url)
    try:
        found = findings(opened, impatient, SQLITE)
    finally:
        opened.close()
    if not store.is_sqlite:
        assert found == []
        return
    [one] = found
    assert one.severity == "error"
    assert one.summary == "SQLite: busy_timeout is 0"
    assert one.evidence["pragmas"] == {"journal_mode": "wal", "busy_timeout": 0}
    assert one.evidence["setting"] == {"PODIUM_SQLITE_BUSY_TIMEOUT_MS": 0}
    assert one.fix is not None
    assert "unset PODIUM_SQLITE_BUSY_TIMEOUT_MS" in one.fix.command
    monkeypatch.delenv("PODIUM_SQLITE_BUSY_TIMEOUT_MS")
    restarted = SqlStore.open(db_url)
    try:
        assert findings(restarted, fast_settings(db_url), SQLITE) == []
    finally:
        restarted.close()


def _rollback_journal(dbapi_conn: Any, _record: Any) -> None:
    """What a foreign tool (or a file system without WAL) leaves: a rollback journal."""
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=DELETE")
    cursor.close()


def _run_sqlite3(command: str) -> str:
    """Run the fix's ``sqlite3 FILE 'PRAGMA …'`` (with Python's sqlite3 if there is no CLI)."""
    argv = shlex.split(command)
    assert argv[0] == "sqlite3"
    if shutil.which("sqlite3"):
        done = subprocess.run(argv, check=True, capture_output=True, text=True)
        return done.stdout.strip()
    with sqlite3.connect(argv[1]) as conn:
        return str(conn.execute(argv[2]).fetchone()[0])


def test_sqlite_not_in_wal_mode(store: SqlStore, settings: Settings) -> None:
    """Connections in rollback-journal mode: the finding names the file and the exact
    sqlite3 command, which puts the file back in WAL."""
    if not store.is_sqlite:
        assert findings(store, settings, SQLITE) == []
        return
    engine = store.db.engine
    sa.event.listen(engine, "connect", _rollback_journal)
    engine.dispose()  # the pool's WAL connections go; new ones leave WAL
    try:
        [found] = findings(store, settings, SQLITE)
    finally:
        sa.event.remove(engine, "connect", _rollback_journal)
        engine.dispose()
    assert found.summary == "SQLite: journal_mode is delete, not wal"
    assert found.evidence["pragmas"]["journal_mode"] == "delete"
    assert found.evidence["pragmas"]["busy_timeout"] > 0
    path = store.db.url.database
    assert path is not None
    assert found.evidence["file"] == path
    assert found.fix is not None
    prefix = "stop every Podium process on the file, then "
    assert found.fix.command == f"{prefix}sqlite3 {shlex.quote(path)} 'PRAGMA journal_mode=WAL'"
    assert _run_sqlite3(found.fix.command.removeprefix(prefix)) == "wal"
    assert findings(store, settings, SQLITE) == []
