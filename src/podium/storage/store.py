"""``SqlStore``: the one implementation of the storage port, on SQLite or PostgreSQL.

Each method is one transaction. Methods are synchronous; the engine runs them in a thread.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from podium.domain.definition import Definition
from podium.domain.outcomes import StepError
from podium.errors import ConfigurationError, LeaseLost
from podium.storage import (
    agents,
    claims,
    controls,
    definitions,
    diagnostics,
    idempotency,
    keys,
    launch,
    migrate,
    queries,
    recovery,
    snapshots,
)
from podium.storage import settlements as settlements_
from podium.storage.agents import AgentRecord
from podium.storage.database import Database, Listener
from podium.storage.definitions import DefinitionRecord
from podium.storage.dialects import send_wakeup
from podium.storage.idempotency import IdempotencyRecord
from podium.storage.keys import ApiKeyRecord
from podium.storage.records import (
    AttemptRecord,
    ClaimedStep,
    EventRecord,
    LaunchRequest,
    RunRecord,
    StepRecord,
    WorkerRecord,
)
from podium.storage.recovery import ActionResult
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

    def launch_idempotent(
        self,
        request: LaunchRequest,
        *,
        key: str,
        request_hash: str,
        respond: Callable[[RunRecord], dict[str, Any]],
    ) -> tuple[IdempotencyRecord, bool]:
        """Launch once per (organization, ``key``): the first call creates the run and stores
        ``respond(run)`` with it in one transaction; later calls (also concurrent ones) get
        that record back. Returns the record and whether this call created it. The caller
        compares ``request_hash`` to detect a different body under the same key."""
        org = request.organization_slug

        def tx(conn: sa.Connection) -> tuple[IdempotencyRecord, bool]:
            found = idempotency.find(conn, org, key)
            if found is not None:
                return found, False
            now = utcnow()
            run_id = launch.create_run(conn, request, now, skip_locked=self.skip_locked)
            idempotency.remember(
                conn,
                organization=org,
                key=key,
                request_hash=request_hash,
                run_id=run_id,
                status_code=201,
                response=respond(queries.get_run(conn, run_id)),
                now=now,
            )
            record = idempotency.find(conn, org, key)
            assert record is not None
            return record, True

        try:
            return self.db.write(tx)
        except sa.exc.IntegrityError:
            # a concurrent request with the same key committed first: replay its record
            with self.db.read() as conn:
                found = idempotency.find(conn, org, key)
            if found is None:
                raise
            return found, False

    def abort(
        self, run_id: str, *, actor: str, reason: str | None = None, force: bool = True
    ) -> list[str]:
        """Abort a run (spec section 4). Without ``force`` an operator action in flight on
        the run makes it a :class:`Conflict` (spec section 8)."""

        def tx(conn: sa.Connection) -> list[str]:
            return controls.abort_run(
                conn,
                run_id,
                actor=actor,
                reason=reason,
                now=utcnow(),
                skip_locked=self.skip_locked,
                force=force,
            )

        return self.db.write(tx)

    def retry(
        self,
        run_id: str,
        *,
        actor: str,
        note: str | None = None,
        step_record_id: str | None = None,
        delay_seconds: float = 0.0,
        modifications: dict[str, Any] | None = None,
    ) -> ActionResult:
        return self.db.write(
            lambda conn: recovery.retry(
                conn,
                run_id,
                actor=actor,
                note=note,
                step_record_id=step_record_id,
                delay_seconds=delay_seconds,
                modifications=modifications,
                now=utcnow(),
                skip_locked=self.skip_locked,
            )
        )

    def skip(
        self,
        run_id: str,
        *,
        actor: str,
        note: str | None = None,
        step_record_id: str | None = None,
        replacement_output: Any = None,
    ) -> ActionResult:
        return self.db.write(
            lambda conn: recovery.skip(
                conn,
                run_id,
                actor=actor,
                note=note,
                step_record_id=step_record_id,
                replacement_output=replacement_output,
                now=utcnow(),
                skip_locked=self.skip_locked,
            )
        )

    # -- definitions ----------------------------------------------------------------------

    def push_definition(
        self, organization: str, definition: Definition, *, status: str = "active"
    ) -> tuple[DefinitionRecord, bool]:
        return self.db.write(
            lambda conn: definitions.push(
                conn, organization, definition, status=status, now=utcnow()
            )
        )

    def list_definitions(
        self, organization: str, *, name: str | None = None, statuses: tuple[str, ...] = ()
    ) -> list[DefinitionRecord]:
        with self.db.read() as conn:
            return definitions.list_versions(conn, organization, name=name, statuses=statuses)

    def get_definition(self, organization: str, name: str, version: str) -> DefinitionRecord:
        with self.db.read() as conn:
            return definitions.get_version(conn, organization, name, version)

    def set_definition_status(
        self, organization: str, name: str, version: str, status: str
    ) -> DefinitionRecord:
        return self.db.write(
            lambda conn: definitions.set_status(conn, organization, name, version, status, utcnow())
        )

    def resolve_definition(
        self, organization: str, name: str, version: str | None
    ) -> DefinitionRecord:
        with self.db.read() as conn:
            return definitions.resolve(conn, organization, name, version)

    # -- agents -----------------------------------------------------------------------------

    def add_agent(self, *, organization: str, slug: str, kind: str, **fields: Any) -> AgentRecord:
        return self.db.write(
            lambda conn: agents.add(
                conn, organization=organization, slug=slug, kind=kind, now=utcnow(), **fields
            )
        )

    def find_agent(self, organization: str, slug: str) -> AgentRecord | None:
        """The organization's agent, else ``global``'s, else None."""
        with self.db.read() as conn:
            return agents.find(conn, organization, slug)

    def get_agent(self, organization: str, slug: str) -> AgentRecord:
        with self.db.read() as conn:
            return agents.get(conn, organization, slug)

    def list_agents(self, organization: str | None) -> list[AgentRecord]:
        with self.db.read() as conn:
            return agents.list_agents(conn, organization)

    def update_agent(self, organization: str, slug: str, **changes: Any) -> AgentRecord:
        return self.db.write(
            lambda conn: agents.update(conn, organization, slug, now=utcnow(), **changes)
        )

    def remove_agent(self, organization: str, slug: str) -> None:
        self.db.write(lambda conn: agents.remove(conn, organization, slug))

    def record_agent_card(self, agent_id: str, card: dict[str, Any]) -> None:
        self.db.write(lambda conn: agents.record_card(conn, agent_id, card, utcnow()))

    def record_agent_health(self, agent_id: str, *, error: dict[str, Any] | None) -> None:
        self.db.write(lambda conn: agents.record_health(conn, agent_id, error=error, now=utcnow()))

    def get_config(self, name: str) -> dict[str, Any] | None:
        """A named configuration document (for example ``routing-policy``), or None."""
        with self.db.read() as conn:
            return agents.get_document(conn, name)

    def put_config(self, name: str, document: dict[str, Any], *, actor: str) -> None:
        self.db.write(
            lambda conn: agents.put_document(conn, name, document, actor=actor, now=utcnow())
        )

    def set_step_runtime(self, step: ClaimedStep, key: str, value: Any) -> None:
        """Record ``metadata.runtime.<key>`` of a step this worker holds, before it waits on
        something (an A2A task) that a reclaimed attempt must find again. Raises
        :class:`LeaseLost` if the claim is no longer current."""

        def tx(conn: sa.Connection) -> None:
            if not claims.set_runtime(conn, step, key, value, now=utcnow()):
                raise LeaseLost(f"step {step.step_id} of run {step.run_id} is no longer held")

        self.db.write(tx)

    # -- keys -----------------------------------------------------------------------------

    def create_key(self, *, organization: str, role: str, name: str) -> tuple[ApiKeyRecord, str]:
        return self.db.write(
            lambda conn: keys.create(
                conn, organization=organization, role=role, name=name, now=utcnow()
            )
        )

    def list_keys(self, organization: str | None = None) -> list[ApiKeyRecord]:
        with self.db.read() as conn:
            return keys.list_keys(conn, organization)

    def revoke_key(self, key_id: str, organization: str | None = None) -> ApiKeyRecord:
        return self.db.write(
            lambda conn: keys.revoke(conn, key_id, now=utcnow(), organization=organization)
        )

    def authenticate(self, key: str) -> ApiKeyRecord | None:
        with self.db.read() as conn:
            return keys.authenticate(conn, key)

    def get_run(self, run_id: str, organization: str | None = None) -> RunRecord:
        with self.db.read() as conn:
            return queries.get_run(conn, run_id, organization)

    def find_run_id(self, prefix: str, organization: str | None = None) -> str:
        """Resolve a full run id or a unique prefix of one (8 characters or more)."""
        with self.db.read() as conn:
            return queries.find_run_id(conn, prefix, organization)

    def definition_of(self, run_id: str) -> Definition:
        """The definition the run was launched with (parsed once per process)."""
        with self.db.read() as conn:
            return snapshots.plan_for(conn, run_id).definition

    def get_snapshot(self, run_id: str) -> dict[str, Any]:
        with self.db.read() as conn:
            return queries.get_snapshot(conn, run_id)

    def list_runs(self, **filters: Any) -> list[RunRecord]:
        with self.db.read() as conn:
            return queries.list_runs(conn, **filters)

    def step_counts(self, run_id: str) -> dict[str, int]:
        """How many steps of the run are in each status."""
        with self.db.read() as conn:
            return queries.step_counts(conn, run_id)

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

    def renew_leases(
        self, *, worker_id: str, step_record_ids: Sequence[str], lease_seconds: float
    ) -> set[str]:
        return self.db.write(
            lambda conn: claims.renew_leases(
                conn,
                worker_id=worker_id,
                step_record_ids=step_record_ids,
                lease_seconds=lease_seconds,
                now=utcnow(),
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

    # -- diagnostics (podium doctor; read-only but for queue_ready_steps) -------------------

    def diagnostics_read(self, fn: Callable[[sa.Connection], Any]) -> Any:
        """Run one read-only query of :mod:`podium.storage.diagnostics` and return its result."""
        with self.db.read() as conn:
            return fn(conn)

    def queue_ready_steps(self, run_id: str, step_record_ids: Sequence[str]) -> list[str]:
        """Queue pending steps of ``run_id`` whose dependencies are met (a compare-and-set;
        each queued step gets its event). Returns the ids queued."""

        def tx(conn: sa.Connection) -> list[str]:
            queued = diagnostics.queue_ready_steps(
                conn, run_id, step_record_ids, utcnow(), skip_locked=self.skip_locked
            )
            if queued:
                self._wake(conn)
            return queued

        return self.db.write(tx)
