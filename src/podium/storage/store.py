"""``SqlStore``: the one implementation of the storage port, on SQLite or PostgreSQL.

Each method is one transaction. Methods are synchronous; the engine runs them in a thread.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from podium.domain.outcomes import StepError
from podium.errors import ConfigurationError, LeaseLost
from podium.storage import claims, controls, launch, migrate, queries
from podium.storage import settlements as settlements_
from podium.storage.database import Database, Listener
from podium.storage.dialects import send_wakeup
from podium.storage.records import (
    AttemptRecord,
    ClaimedStep,
    EventRecord,
    LaunchRequest,
    RunRecord,
    StepRecord,
    WorkerRecord,
)
from podium.storage.settlements import Recorded, Settlement
from podium.storage.tables import workers

WAKE_STEPS = "steps"


def utcnow() -> datetime:
    return datetime.now(UTC)


class SqlStore:
    """Podium's storage on one database. Safe to share between threads."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @classmethod
    def open(cls, url: str, *, migrate_schema: bool = True, pool_size: int = 10) -> SqlStore:
        """Open the database at ``url`` and bring its schema up to date; with
        ``migrate_schema=False`` only check it is, and say to run ``podium migrate`` if not.
        Raises :class:`StorageUnavailable` when the database cannot be reached."""
        store = cls(Database(url, pool_size=pool_size))
        try:
            with store.db.unavailable_as_error():
                if migrate_schema:
                    store.migrate()
                else:
                    store._check_schema()
        except BaseException:
            store.close()
            raise
        return store

    def _check_schema(self) -> None:
        current, head = migrate.current_revision(self.db), migrate.head_revision(self.db)
        if current != head:
            state = "has no Podium schema" if current is None else f"is at revision {current}"
            raise ConfigurationError(
                f"the database {self.db.describe()} {state}; this Podium needs {head}: "
                "run `podium migrate`"
            )

    def migrate(self) -> None:
        migrate.upgrade(self.db)

    def close(self) -> None:
        self.db.close()

    @property
    def skip_locked(self) -> bool:
        return self.db.skip_locked

    # -- wake-ups -------------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        self.db.add_listener(listener)

    def remove_listener(self, listener: Listener) -> None:
        self.db.remove_listener(listener)

    def _wake(self, conn: sa.Connection, payload: str = WAKE_STEPS) -> None:
        """Wake workers (and watchers) in every process once ``conn`` commits."""
        send_wakeup(conn, payload)

    # -- runs -----------------------------------------------------------------------------

    def launch(self, request: LaunchRequest) -> str:
        """Create a run and queue its root steps; returns the run id."""

        def tx(conn: sa.Connection) -> str:
            return launch.create_run(conn, request, utcnow(), skip_locked=self.skip_locked)

        return self.db.write(tx)

    def abort(self, run_id: str, *, actor: str, reason: str | None = None) -> list[str]:
        def tx(conn: sa.Connection) -> list[str]:
            return controls.abort_run(
                conn,
                run_id,
                actor=actor,
                reason=reason,
                now=utcnow(),
                skip_locked=self.skip_locked,
            )

        return self.db.write(tx)

    def get_run(self, run_id: str, organization: str | None = None) -> RunRecord:
        with self.db.read() as conn:
            return queries.get_run(conn, run_id, organization)

    def find_run_id(self, prefix: str, organization: str | None = None) -> str:
        """Resolve a full run id or a unique prefix of one (8 characters or more)."""
        with self.db.read() as conn:
            return queries.find_run_id(conn, prefix, organization)

    def get_snapshot(self, run_id: str) -> dict[str, Any]:
        with self.db.read() as conn:
            return queries.get_snapshot(conn, run_id)

    def list_runs(self, **filters: Any) -> list[RunRecord]:
        with self.db.read() as conn:
            return queries.list_runs(conn, **filters)

    def steps_of(self, run_id: str) -> list[StepRecord]:
        with self.db.read() as conn:
            return queries.steps_of(conn, run_id)

    def get_step(self, step_record_id: str, run_id: str | None = None) -> StepRecord:
        with self.db.read() as conn:
            return queries.get_step(conn, step_record_id, run_id)

    def attempts_of(self, step_record_id: str) -> list[AttemptRecord]:
        with self.db.read() as conn:
            return queries.attempts_of(conn, step_record_id)

    def events_after(self, run_id: str, after: int = 0, limit: int = 1000) -> list[EventRecord]:
        with self.db.read() as conn:
            return queries.events_after(conn, run_id, after, limit)

    # -- work -----------------------------------------------------------------------------

    def claim(self, *, worker_id: str, capacity: int, lease_seconds: float) -> list[ClaimedStep]:
        return self.db.write(
            lambda conn: claims.claim(
                conn,
                worker_id=worker_id,
                capacity=capacity,
                lease_seconds=lease_seconds,
                now=utcnow(),
                skip_locked=self.skip_locked,
            )
        )

    def record(
        self,
        settlements: Sequence[Settlement],
        *,
        worker_id: str,
        claim_next: int = 0,
        lease_seconds: float = 30.0,
    ) -> Recorded:
        """Record finished attempts in one transaction (group commit); see
        :func:`podium.storage.settlements.record`."""

        def tx(conn: sa.Connection) -> Recorded:
            result = settlements_.record(
                conn,
                settlements,
                worker_id=worker_id,
                claim_next=claim_next,
                lease_seconds=lease_seconds,
                now=utcnow(),
                skip_locked=self.skip_locked,
            )
            if result.wake_others:
                self._wake(conn)
            return result

        return self.db.write(tx)

    def complete(
        self,
        step: ClaimedStep,
        *,
        output: Any,
        resolved_input: Any = None,
        claim_next: int = 0,
        lease_seconds: float = 30.0,
    ) -> list[ClaimedStep]:
        """Record one step's output; raises :class:`LeaseLost` if its claim is not current.
        Returns the follow-up steps claimed for the same worker (at most ``claim_next``)."""
        result = self.record(
            [Settlement(step, output=output, resolved_input=resolved_input)],
            worker_id=step.worker_id,
            claim_next=claim_next,
            lease_seconds=lease_seconds,
        )
        if result.lost:
            raise LeaseLost(f"step {step.step_id} of run {step.run_id} is no longer held")
        return result.claimed

    def fail(
        self,
        step: ClaimedStep,
        *,
        error: StepError,
        retry_at: datetime | None,
        resolved_input: Any = None,
    ) -> None:
        """Record one failed attempt (a retry at ``retry_at``, or a final failure); raises
        :class:`LeaseLost` if its claim is not current."""
        result = self.record(
            [Settlement(step, error=error, retry_at=retry_at, resolved_input=resolved_input)],
            worker_id=step.worker_id,
        )
        if result.lost:
            raise LeaseLost(f"step {step.step_id} of run {step.run_id} is no longer held")

    def renew_leases(self, *, worker_id: str, lease_seconds: float) -> set[str]:
        return self.db.write(
            lambda conn: claims.renew_leases(
                conn, worker_id=worker_id, lease_seconds=lease_seconds, now=utcnow()
            )
        )

    def reclaim_expired(self, *, max_recoveries: int) -> list[tuple[str, str]]:
        def tx(conn: sa.Connection) -> list[tuple[str, str]]:
            found = claims.reclaim_expired(
                conn, now=utcnow(), max_recoveries=max_recoveries, skip_locked=self.skip_locked
            )
            if found:
                self._wake(conn)
            return found

        return self.db.write(tx)

    def enforce_deadlines(self) -> list[str]:
        return self.db.write(
            lambda conn: claims.enforce_deadlines(conn, now=utcnow(), skip_locked=self.skip_locked)
        )

    def held_by(self, step_record_ids: Sequence[str], worker_id: str) -> set[str]:
        with self.db.read() as conn:
            return claims.held_by(conn, step_record_ids, worker_id)

    # -- workers --------------------------------------------------------------------------

    def register_worker(self, worker_id: str, concurrency: int) -> None:
        now = utcnow()
        self.db.write(
            lambda conn: conn.execute(
                workers.insert().values(
                    id=worker_id,
                    hostname=socket.gethostname(),
                    pid=os.getpid(),
                    concurrency=concurrency,
                    started_at=now,
                    heartbeat_at=now,
                )
            )
        )

    def stop_worker(self, worker_id: str) -> None:
        self.db.write(
            lambda conn: conn.execute(
                workers.update().where(workers.c.id == worker_id).values(stopped_at=utcnow())
            )
        )

    def list_workers(self, *, alive_since: datetime | None = None) -> list[WorkerRecord]:
        with self.db.read() as conn:
            return queries.list_workers(conn, alive_since=alive_since)
