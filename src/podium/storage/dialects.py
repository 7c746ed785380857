"""The small named seams where SQLite and PostgreSQL differ.

Everything else in storage is written once in SQLAlchemy Core. The seams are: how an engine is
opened (URL, pragmas, pool), how a write transaction begins, whether rows can be locked with
``SKIP LOCKED``, how a cross-process wake-up is sent, and which driver errors mean "try the
transaction again".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from podium.errors import ConfigurationError

# Connection execution option that marks a read-only transaction; on SQLite it begins
# DEFERRED so that readers never take the write lock.
READ_ONLY = "podium_read_only"

NOTIFY_CHANNEL = "podium_wakeup"


def normalize_url(url: str) -> URL:
    """Accept ``sqlite:///path``, a bare file path, or ``postgresql://`` and pick our drivers."""
    if "://" not in url:
        url = f"sqlite:///{Path(url).expanduser()}"
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ConfigurationError(f"DATABASE_URL is not a database URL: {url!r}") from exc
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+pysqlite")
    raise ConfigurationError(
        f"DATABASE_URL uses {backend!r}; Podium supports sqlite and postgresql"
    )


def create_engine(url: URL, *, pool_size: int = 10) -> Engine:
    """Open an engine with the settings each database needs for Podium's workload."""
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    return sa.create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,  # reconnect by itself after a PostgreSQL restart (D6)
        pool_recycle=1800,
    )


def sqlite_file(url: URL) -> Path | None:
    """The file of a SQLite URL (None: PostgreSQL or an in-memory database)."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database).expanduser()


def _sqlite_engine(url: URL) -> Engine:
    database = url.database or ""
    if database and database != ":memory:":
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
    synchronous = _sqlite_synchronous()

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own is DEFERRED).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode is durable across process crashes (a power loss may drop the
        # last commits); PODIUM_SQLITE_SYNCHRONOUS=FULL trades speed for power-loss safety.
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # Writers take the lock at BEGIN (IMMEDIATE), so two writers queue on busy_timeout
        # instead of failing with "database is locked" on upgrade (target D8).
        mode = "DEFERRED" if conn.get_execution_options().get(READ_ONLY) else "IMMEDIATE"
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _sqlite_synchronous() -> str:
    from podium.settings import Settings

    return Settings.from_env().sqlite_synchronous


def supports_skip_locked(engine: Engine) -> bool:
    """PostgreSQL locks claimed rows with ``FOR UPDATE SKIP LOCKED``; SQLite has one writer."""
    return engine.dialect.name == "postgresql"


WAKEUPS = "podium_wakeups"


def send_wakeup(conn: sa.Connection, payload: str) -> None:
    """Wake listeners once this transaction commits: this process's (by
    :meth:`Database.write`, after the commit) and, on PostgreSQL, every other (NOTIFY)."""
    conn.info.setdefault(WAKEUPS, set()).add(payload)
    if conn.dialect.name == "postgresql":
        conn.execute(
            sa.text("SELECT pg_notify(:channel, :payload)"),
            {
                "channel": NOTIFY_CHANNEL,
                "payload": payload,
            },
        )


def is_transient(exc: BaseException) -> bool:
    """Errors after which the whole transaction may simply be run again."""
    if isinstance(exc, OperationalError):
        return True  # lost connection, server restart, SQLite busy past its timeout
    if isinstance(exc, DBAPIError):
        sqlstate = getattr(getattr(exc.orig, "sqlstate", None), "strip", lambda: None)()
        # serialization_failure, deadlock_detected
        return sqlstate in {"40001", "40P01"} or exc.connection_invalidated
    return False
