"""One way to make each database unavailable, so that outage tests run on both.

- PostgreSQL: a :class:`~tests.faults.pgproxy.PgProxy` between Podium and the server;
  :meth:`Cut.cut` refuses connections (or drops, or stalls them).
- SQLite: another connection holds the file's write lock (``BEGIN EXCLUSIVE``), with
  ``PODIUM_SQLITE_BUSY_TIMEOUT_MS`` short, so that writers fail with "database is locked"
  as they would behind a long-running writer in another process. Readers still read (WAL).
"""

from __future__ import annotations

import sqlite3
from typing import Protocol

from sqlalchemy.engine import make_url

from tests.faults.pgproxy import Mode, PgProxy


class Cut(Protocol):
    """A database that a test can make unavailable and bring back."""

    url: str  # what Podium should connect to
    writes_only: bool  # True when reads still work during the cut (SQLite)

    def cut(self) -> None: ...

    def restore(self) -> None: ...


class ProxiedPostgres:
    """PostgreSQL behind a proxy; a cut refuses connections (``mode``)."""

    writes_only = False

    def __init__(self, server_url: str, mode: Mode = "refuse") -> None:
        self.server_url = server_url
        self.proxy = PgProxy.to_url(server_url).start()
        self.url = self.proxy.url(server_url)
        self.mode = mode

    def cut(self) -> None:
        {"refuse": self.proxy.refuse, "drop": self.proxy.drop, "stall": self.proxy.stall}[
            self.mode
        ]()

    def restore(self) -> None:
        self.proxy.forward()

    def close(self) -> None:
        self.proxy.close()


class LockedSqlite:
    """A SQLite file whose write lock another connection can hold."""

    writes_only = True

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = make_url(url).database or ""
        self._holder: sqlite3.Connection | None = None

    def cut(self) -> None:
        holder = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        holder.execute("BEGIN EXCLUSIVE")
        self._holder = holder

    def restore(self) -> None:
        if self._holder is not None:
            self._holder.rollback()
            self._holder.close()
            self._holder = None

    def close(self) -> None:
        self.restore()
