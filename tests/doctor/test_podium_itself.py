"""Runbook section 8 (Podium itself): SQLite settings, produced for real or injected, on
both databases, with evidence, fix, and the fix resolving it."""

from __future__ import annotations

import shlex
import shutil
import sqlite3
import subprocess
from typing import Any

import pytest
import sqlalchemy as sa

from podium.settings import Settings
from podium.storage.store import SqlStore
from tests.doctor.conftest import findings
from tests.support import fast_settings

SQLITE = "podium.sqlite-settings"


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
