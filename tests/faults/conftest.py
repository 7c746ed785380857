"""Fixtures for outage tests: ``cuttable`` runs a test on SQLite and PostgreSQL with a
database the test can make unavailable (see :mod:`tests.faults.outages`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.outages import Cut, LockedSqlite, ProxiedPostgres


@pytest.fixture
def cuttable(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cut]:
    """``db_url``'s database, made unavailable by ``cut()`` and back by ``restore()``."""
    monkeypatch.setenv("PODIUM_DB_CONNECT_TIMEOUT", "2")
    if db_url.startswith("sqlite"):
        monkeypatch.setenv("PODIUM_SQLITE_BUSY_TIMEOUT_MS", "100")
        locked = LockedSqlite(db_url)
        yield locked
        locked.close()
        return
    proxied = ProxiedPostgres(db_url)
    yield proxied
    proxied.close()


@pytest.fixture
def proxied_pg(pg_schema_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ProxiedPostgres]:
    """PostgreSQL (a fresh schema) behind a proxy."""
    monkeypatch.setenv("PODIUM_DB_CONNECT_TIMEOUT", "2")
    proxied = ProxiedPostgres(pg_schema_url)
    yield proxied
    proxied.close()
