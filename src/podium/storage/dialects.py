"""The small named seams where SQLite and PostgreSQL differ.

Everything else in storage is written once in SQLAlchemy Core. The seams are: how an engine is
opened (URL, pragmas, pool), how a write transaction begins, whether rows can be locked with
``SKIP LOCKED``, how a cross-process wake-up is sent, which driver errors mean "try the
transaction again", which mean "the database is unavailable" (:func:`is_unavailable`) and
which mean "unique constraint violated" (409), and an insert that ignores a duplicate key
(upserts).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

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
        connect_args=postgres_connect_args(),
    )


def postgres_connect_args() -> dict[str, Any]:
    """libpq options that turn a server that does not answer into an error, not a hang.

    ``connect_timeout`` bounds a connection attempt to a server that accepts TCP but never
    answers (``PODIUM_DB_CONNECT_TIMEOUT`` seconds, default 5); the keepalives notice a
    connection whose peer vanished without a reset within about 20 s.
    """
    from podium.settings import Settings

    timeout = int(Settings.from_env().db_connect_timeout)
    return {
        "connect_timeout": max(timeout, 2),  # libpq: 0 would mean "wait forever"
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 2,
    }


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
    busy_timeout = _sqlite_busy_timeout_ms()

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own is DEFERRED).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode is durable across process crashes (a power loss may drop the
        # last commits); PODIUM_SQLITE_SYNCHRONOUS=FULL trades speed for power-loss safety.
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout}")
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


def _sqlite_busy_timeout_ms() -> int:
    """How long a writer waits for another process's write lock before the transaction
    fails as unavailable (and is retried): ``PODIUM_SQLITE_BUSY_TIMEOUT_MS``, default 30 s."""
    from podium.settings import Settings

    return Settings.from_env().sqlite_busy_timeout_ms


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


# SQLSTATEs that mean the server is away or refusing sessions, not that the statement is
# wrong (the classes DBOS retries on too): connection_exception (class 08),
# admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections.
UNAVAILABLE_SQLSTATE_CLASSES = ("08",)
UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})
# SQLite messages that mean the file cannot be used right now (locked past busy_timeout,
# missing directory, full or failing disk), as opposed to a wrong statement.
SQLITE_UNAVAILABLE_MESSAGES = (
    "database is locked",
    "database table is locked",
    "unable to open database file",
    "disk i/o error",
    "database or disk is full",
)


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means "the database cannot be reached or used right now".

    These errors become :class:`~podium.errors.StorageUnavailable` (the API answers 503
    with ``Retry-After``, the worker keeps its results and retries them) instead of an
    error about the request.
    """
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        # the server answered: only these states say it is going away or full (a deadlock
        # or a lock timeout is an OperationalError too, but the server is there)
        return sqlstate.startswith(UNAVAILABLE_SQLSTATE_CLASSES) or sqlstate in (
            UNAVAILABLE_SQLSTATES
        )
    if isinstance(exc, InterfaceError):
        return True  # psycopg: the connection is closed or broken
    if isinstance(exc, OperationalError):
        module = type(exc.orig).__module__ if exc.orig is not None else ""
        if module.startswith("sqlite3"):
            message = str(exc.orig).lower()
            return any(m in message for m in SQLITE_UNAVAILABLE_MESSAGES)
        return True  # psycopg.OperationalError: connection failed, lost or timed out
    return False


def is_transient(exc: BaseException) -> bool:
    """Errors after which the whole transaction may simply be run again."""
    if isinstance(exc, OperationalError) or is_unavailable(exc):
        return True  # lost connection, server restart, SQLite busy past its timeout
    if isinstance(exc, DBAPIError):
        sqlstate = getattr(getattr(exc.orig, "sqlstate", None), "strip", lambda: None)()
        # serialization_failure, deadlock_detected
        return sqlstate in {"40001", "40P01"} or exc.connection_invalidated
    return False


def is_unique_violation(exc: BaseException) -> bool:
    """Whether ``exc`` (an SQLAlchemy error or its DBAPI cause) is a unique-constraint
    violation: SQLSTATE 23505 on PostgreSQL, ``UNIQUE constraint failed`` on SQLite. The
    store answers it as :class:`~podium.errors.Conflict` (409), never a raw IntegrityError."""
    orig = getattr(exc, "orig", exc)
    if getattr(orig, "sqlstate", None) == "23505":
        return True
    return isinstance(exc, sa.exc.IntegrityError | sqlite3.IntegrityError) and (
        "UNIQUE constraint failed" in str(orig) or "PRIMARY KEY" in str(orig)
    )


def insert_or_ignore(
    conn: sa.Connection, table: sa.Table, values: dict[str, Any], keys: tuple[str, ...]
) -> bool:
    """``INSERT ... ON CONFLICT (keys) DO NOTHING``; True when a row was inserted. Of two
    transactions inserting the same key at once, the later one waits for the first and then
    inserts nothing instead of failing (both dialects have the clauses; SQLite since 3.35)."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=keys)
        .returning(*(table.c[k] for k in keys))
    )
    # RETURNING, not rowcount: drivers do not all report 0 for a skipped row
    return conn.execute(statement).first() is not None
