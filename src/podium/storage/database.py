"""Opening the database, running transactions, and waking workers.

Storage runs synchronous SQLAlchemy Core transactions; the asynchronous engine calls them in a
thread (one hop per transaction, not per statement). Nothing above the storage layer sees a
connection or a driver type.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from podium.errors import DuplicateKey, StorageUnavailable
from podium.storage import dialects, observe, tables
from podium.storage.availability import Availability

log = logging.getLogger(__name__)

T = TypeVar("T")

Listener = Callable[[str], None]


class Database:
    """One database (SQLite file or PostgreSQL) shared by every part of one process."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = dialects.normalize_url(url)
        self.engine: Engine = dialects.create_engine(self.url, pool_size=pool_size)
        self.dialect = self.engine.dialect.name
        tables.with_dialect_options(self.dialect)
        self.skip_locked = dialects.supports_skip_locked(self.engine)
        self._listeners: list[Listener] = []
        self._listen_thread: threading.Thread | None = None
        self._closing = threading.Event()
        # when this process last found the database away (read by the sweeper, D6)
        self.availability = Availability()
        # SQLite admits one writer; threads of this process queue here and wake the moment
        # the lock is free, instead of in SQLite's busy handler, which sleeps in steps of
        # milliseconds. Other processes still wait on busy_timeout.
        self._write_lock: threading.Lock | None = threading.Lock() if self.is_sqlite else None

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def describe(self) -> str:
        """The URL without its password, for logs and the CLI."""
        return self.url.render_as_string(hide_password=True)

    # -- transactions -------------------------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """A read-only transaction (SQLite: DEFERRED, never blocks writers)."""
        with self.unavailable_as_error(), self.engine.connect() as conn:
            conn = conn.execution_options(**{dialects.READ_ONLY: True})
            with conn.begin():
                yield conn

    @contextmanager
    def unavailable_as_error(self) -> Iterator[None]:
        """Turn "cannot reach the database" driver errors into :class:`StorageUnavailable`
        (and note the outage in :attr:`availability`)."""
        try:
            yield
        except sa.exc.DBAPIError as exc:
            if not (isinstance(exc, sa.exc.OperationalError) or dialects.is_unavailable(exc)):
                raise
            self.availability.failed()
            raise StorageUnavailable(
                f"database {self.describe()} unavailable: {str(exc.orig).strip()}"
            ) from exc

    def write(self, fn: Callable[[sa.Connection], T], *, attempts: int = 5) -> T:
        """Run ``fn`` in one write transaction, again from the start after a transient error.

        ``fn`` must be safe to repeat: every state change is guarded by the state it expects,
        so a repetition after a lost commit acknowledgement changes nothing twice.
        """
        delay = 0.05
        for attempt in range(1, attempts + 1):
            try:
                with self._serialized(), self.engine.begin() as conn:
                    conn.info.pop(dialects.WAKEUPS, None)
                    observe.take(conn)  # facts of an earlier, failed attempt
                    result = fn(conn)
                    wakeups = conn.info.pop(dialects.WAKEUPS, ())
                    observed = observe.take(conn)
                # the block committed: now tell this process's listeners
                for payload in wakeups:
                    self.wake_local(payload)
                observe.deliver(observed)  # metrics count committed facts only (issue 12)
                return result
            except sa.exc.DBAPIError as exc:
                if dialects.is_unique_violation(exc):  # a concurrent writer was first
                    raise DuplicateKey("a concurrent request wrote the same object first") from exc
                if dialects.is_unavailable(exc):
                    self.availability.failed()
                if not dialects.is_transient(exc) or attempt == attempts:
                    if dialects.is_transient(exc):
                        raise StorageUnavailable(
                            f"database {self.describe()} unavailable: {str(exc.orig).strip()}"
                        ) from exc
                    raise
                log.warning("transient database error (attempt %d): %s", attempt, exc.orig)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")

    @contextmanager
    def _serialized(self) -> Iterator[None]:
        if self._write_lock is None:
            yield
            return
        with self._write_lock:
            yield

    # -- wake-ups -----------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(payload)`` on every wake-up, local or (PostgreSQL) from elsewhere."""
        self._listeners.append(listener)
        if not self.is_sqlite and self._listen_thread is None:
            self._listen_thread = threading.Thread(
                target=self._listen_postgres, name="podium-listen", daemon=True
            )
            self._listen_thread.start()

    def remove_listener(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def wake_local(self, payload: str) -> None:
        """Wake this process's listeners now (another process learns by NOTIFY or polling)."""
        for listener in list(self._listeners):
            try:
                listener(payload)
            except Exception:  # one listener's bug must not silence the others
                log.exception("wake-up listener %r failed", listener)

    def _listen_postgres(self) -> None:
        import psycopg

        conninfo = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._closing.is_set():
            try:
                with psycopg.connect(
                    conninfo, autocommit=True, **dialects.postgres_connect_args()
                ) as conn:
                    conn.execute(f"LISTEN {dialects.NOTIFY_CHANNEL}")
                    # a reconnect may have missed notifications: wake everyone once
                    self.wake_local("reconnected")
                    while not self._closing.is_set():
                        for note in conn.notifies(timeout=0.25):
                            self.wake_local(note.payload)
            except psycopg.Error as exc:
                if self._closing.is_set():
                    return
                self.availability.failed()
                log.warning("LISTEN connection lost (%s); reconnecting", exc)
                self._closing.wait(1.0)

    def close(self) -> None:
        self._closing.set()
        if self._listen_thread is not None:
            self._listen_thread.join(timeout=3)
        self.engine.dispose()
