"""``SqlStore``: the one implementation of the storage port, on SQLite or PostgreSQL.

Each method is one transaction. Methods are synchronous; async code calls them through
:meth:`SqlStore.call`, which decides once per database whether they run inline or in a thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa

from podium import __version__
from podium.domain.outcomes import StepError
from podium.errors import (
    ConfigurationError,
    Conflict,
    DuplicateKey,
    LeaseLost,
    NoDatabase,
    NotFound,
)
from podium.settings import fault_point
from podium.storage import (
    agents,
    approvals,
    checkpoints,
    claims,
    controls,
    definitions,
    diagnostics,
    dialects,
    idempotency,
    keys,
    launch,
    migrate,
    queries,
    recovery,
    snapshots,
    workers,
)
from podium.storage import settlements as settlements_
from podium.storage.agents import AgentRecord
from podium.storage.approvals import ApprovalRecord
from podium.storage.cache import CacheStore
from podium.storage.checkpoints import Decided
from podium.storage.database import Database, Listener
from podium.storage.definitions import DefinitionRecord
from podium.storage.dialects import send_wakeup
from podium.storage.gauges import StateCounts, read_state
from podium.storage.idempotency import IdempotencyRecord
from podium.storage.keys import ApiKeyRecord
from podium.storage.migrate import SchemaStatus
from podium.storage.records import (
    AttemptRecord,
    ClaimedStep,
    EventRecord,
    LaunchRequest,
    RunEnd,
    RunPosition,
    RunRecord,
    StepRecord,
    WorkerRecord,
)
from podium.storage.recovery import ActionResult
from podium.storage.runtx import lock_run
from podium.storage.settlements import Recorded, Settlement
from podium.storage.webhooks import WebhookStore

if TYPE_CHECKING:  # annotations only: a store that only reads needs no definition model
    from podium.domain.definition import Definition

WAKE_STEPS = "steps"
T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(UTC)


class SqlStore:
    """Podium's storage on one database. Safe to share between threads."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.cache = CacheStore(db)  # the step cache's transactions (issue 12)

    @classmethod
    def open(cls, url: str, *, migrate_schema: bool = True, pool_size: int = 10) -> SqlStore:
        """Open the database at ``url`` and bring its schema up to date; with
        ``migrate_schema=False`` only check it is, and say to run ``podium migrate`` if not;
        then a SQLite file that does not exist is :class:`NoDatabase` (it is not created).
        Raises :class:`StorageUnavailable` when the database cannot be reached."""
        if not migrate_schema:
            missing = dialects.sqlite_file(dialects.normalize_url(url))
            if missing is not None and not missing.exists():
                raise NoDatabase(
                    f"there is no database at {missing} yet: `podium migrate` creates it "
                    "(so does `podium run FILE`), or point --database-url/DATABASE_URL at one"
                )
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
        status = self.schema_status()
        if not status.up_to_date:
            current = status.current
            state = "has no Podium schema" if current is None else f"is at revision {current}"
            raise ConfigurationError(
                f"the database {self.db.describe()} {state}; this Podium needs {status.head}: "
                "run `podium migrate`"
            )

    def migrate(self) -> None:
        migrate.upgrade(self.db)

    def close(self) -> None:
        self.db.close()

    @property
    def skip_locked(self) -> bool:
        return self.db.skip_locked

    # -- the store as the layers above see it ---------------------------------------------

    def unavailable_within(self, seconds: float) -> bool:
        """Whether this process failed to reach the database in the last ``seconds`` (an
        outage: sweepers wait before taking steps back, D6)."""
        return self.db.availability.unavailable_within(seconds)

    def state_counts(self) -> StateCounts:
        """The state gauges of ``/metrics`` as of now (one statement, see
        :func:`podium.storage.gauges.read_state`)."""
        return read_state(self.db, utcnow())

    @property
    def webhooks(self) -> WebhookStore:
        """Webhook endpoints, deliveries and stream tickets on this database."""
        return WebhookStore(self.db)

    @property
    def is_sqlite(self) -> bool:
        """One writer at a time, wake-ups only in-process (other processes poll)."""
        return self.db.is_sqlite

    def describe(self) -> str:
        """The database URL without its password, for logs and the CLI."""
        return self.db.describe()

    def schema_status(self) -> SchemaStatus:
        """The schema revision against the one this Podium needs; raises
        :class:`StorageUnavailable` when the database cannot be reached."""
        with self.db.unavailable_as_error():
            return migrate.schema_status(self.db)

    def live_workers(self, *, silent_for: float) -> list[WorkerRecord]:
        """Workers not stopped whose last heartbeat is under ``silent_for`` seconds old."""
        return self.list_workers(alive_since=utcnow() - timedelta(seconds=silent_for))

    async def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run one store method (one transaction) from async code.

        PostgreSQL transactions wait on the network, so they run in a thread and several
        overlap. SQLite admits one writer at a time and its transactions take well under a
        millisecond, so a thread would buy no parallelism and its hand-off would cost more
        than the transaction: they run inline.
        """
        if self.db.is_sqlite:
            return fn(*args, **kwargs)
        return await asyncio.to_thread(fn, *args, **kwargs)

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
        except (sa.exc.IntegrityError, DuplicateKey):
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
        resume_child: bool = False,
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
                resume_child=resume_child,  # issue 11
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

    # -- approvals (spec section 5) -------------------------------------------------------

    def decide_approval(
        self,
        approval_id: str,
        *,
        organization: str | None,
        decision: str,
        actor: str,
        note: str | None = None,
        modifications: dict[str, Any] | None = None,
        response: dict[str, Any] | None = None,
    ) -> Decided:
        """Decide a pending approval; see :func:`podium.storage.checkpoints.decide`."""

        def tx(conn: sa.Connection) -> Decided:
            decided = checkpoints.decide(
                conn,
                approval_id,
                organization=organization,
                decision=decision,
                actor=actor,
                note=note,
                modifications=modifications,
                response=response,
                now=utcnow(),
                skip_locked=self.skip_locked,
            )
            self._wake(conn)
            return decided

        decided = self.db.write(tx)
        fault_point(checkpoints.FAULT_AFTER_DECISION)
        return decided

    def decide_approval_idempotent(
        self,
        approval_id: str,
        *,
        organization: str,
        key: str,
        request_hash: str,
        respond: Callable[[Decided], dict[str, Any]],
        **decision: Any,
    ) -> tuple[IdempotencyRecord, bool]:
        """:meth:`decide_approval` at most once per (organization, approval, ``key``): the
        first call stores ``respond(decided)`` with the decision in one transaction; a
        repeat (also a concurrent one) gets that record back. Returns it and whether this
        call decided. The caller compares ``request_hash`` for a different body."""
        scoped = f"approval:{approval_id}:{key}"

        def tx(conn: sa.Connection) -> tuple[IdempotencyRecord, bool]:
            found = idempotency.find(conn, organization, scoped)
            if found is not None:
                return found, False
            decided = checkpoints.decide(
                conn,
                approval_id,
                organization=organization,
                now=utcnow(),
                skip_locked=self.skip_locked,
                **decision,
            )
            idempotency.remember(
                conn,
                organization=organization,
                key=scoped,
                request_hash=request_hash,
                run_id=decided.approval.run_id,
                status_code=200,
                response=respond(decided),
                now=utcnow(),
            )
            self._wake(conn)
            record = idempotency.find(conn, organization, scoped)
            assert record is not None
            return record, True

        try:
            found, created = self.db.write(tx)
        except (sa.exc.IntegrityError, Conflict):
            # a concurrent request with the same key won: replay its answer
            with self.db.read() as conn:
                earlier = idempotency.find(conn, organization, scoped)
            if earlier is None:
                raise
            return earlier, False
        if created:
            fault_point(checkpoints.FAULT_AFTER_DECISION)
        return found, created

    def get_approval(self, approval_id: str, organization: str | None = None) -> ApprovalRecord:
        with self.db.read() as conn:
            return approvals.get(conn, approval_id, organization)

    def list_approvals(self, organization: str | None, **filters: Any) -> list[ApprovalRecord]:
        with self.db.read() as conn:
            return approvals.list_approvals(conn, organization, **filters)

    def pending_approvals(self, run_id: str) -> list[ApprovalRecord]:
        with self.db.read() as conn:
            return approvals.pending_of_run(conn, run_id)

    def expire_approvals(self, *, limit: int = 100) -> list[Decided]:
        """The sweeper's part: ``orchestration.checkpoint.expiring`` for approvals past 80 %
        of their time, and ``onTimeout`` for those past ``expiresAt`` (each exactly once,
        whatever decision races it). Returns the expiries applied."""
        now = utcnow()

        def warn(conn: sa.Connection) -> None:
            for approval_id, run_id in approvals.expiring(conn, now, limit):
                rtx = lock_run(conn, run_id, now, skip_locked=self.skip_locked)
                approvals.warn_expiring(rtx, approval_id)
                rtx.close()

        with self.db.read() as conn:
            warn_due = bool(approvals.expiring(conn, now, 1))
            expiry_due = approvals.due(conn, now, limit)
        if warn_due:
            self.db.write(warn)
        applied: list[Decided] = []
        for approval_id, run_id in expiry_due:

            def expire(conn: sa.Connection, aid: str = approval_id, rid: str = run_id) -> None:
                decided = checkpoints.expire_one(
                    conn, aid, rid, now=utcnow(), skip_locked=self.skip_locked
                )
                if decided is not None:
                    applied.append(decided)
                    self._wake(conn)

            self.db.write(expire)
        return applied

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

    def upsert_agents(
        self, entries: list[tuple[str, str, str, dict[str, Any]]]
    ) -> list[tuple[AgentRecord, str]]:
        """Register or update ``(organization, slug, kind, fields)`` entries in one
        transaction (``agents.yaml``); each answers ``created``, ``updated`` or ``unchanged``."""

        def tx(conn: sa.Connection) -> list[tuple[AgentRecord, str]]:
            now = utcnow()
            return [
                agents.upsert(conn, organization=o, slug=s, kind=k, now=now, **fields)
                for o, s, k, fields in entries
            ]

        return self.db.write(tx)

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

    def live_key(self, key_id: str) -> ApiKeyRecord | None:
        """The record of key ``key_id`` if it exists and is not revoked (dashboard sessions
        name their key by id)."""
        with self.db.read() as conn:
            try:
                record = keys.get(conn, key_id)
            except NotFound:
                return None
        return record if record.revoked_at is None else None

    def get_run(self, run_id: str, organization: str | None = None) -> RunRecord:
        with self.db.read() as conn:
            return queries.get_run(conn, run_id, organization)

    def run_position(self, run_id: str) -> RunPosition:
        """The run's status and last event sequence (two small columns: live streams read
        this on every wake-up)."""
        with self.db.read() as conn:
            return queries.run_position(conn, run_id)

    def run_end(self, run_id: str) -> RunEnd:
        """How the run ended, with its outputs bounded (a live stream's last message)."""
        with self.db.read() as conn:
            return queries.run_end(conn, run_id)

    def find_run_id(self, prefix: str, organization: str | None = None) -> str:
        """Resolve a full run id or a unique prefix of one (8 characters or more)."""
        with self.db.read() as conn:
            return queries.find_run_id(conn, prefix, organization)

    def last_sequences(
        self, run_ids: Sequence[str], organization: str | None = None
    ) -> dict[str, int]:
        """Each existing run's last event sequence (one read, however many runs)."""
        with self.db.read() as conn:
            return queries.last_sequences(conn, run_ids, organization)

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

    def bounded_events_after(
        self, run_id: str, after: int = 0, limit: int = 1000
    ) -> list[EventRecord]:
        """:meth:`events_after` with large values inside events as truncation markers, read
        so that a page holds little memory whatever the log holds (live streams)."""
        with self.db.read() as conn:
            return queries.bounded_events_after(conn, run_id, after, limit)

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

    def reclaim_expired(
        self, *, max_recoveries: int, live: Sequence[str] = ()
    ) -> list[tuple[str, str]]:
        """Take back steps whose lease expired, except ``live`` ones (the caller runs them)."""

        def tx(conn: sa.Connection) -> list[tuple[str, str]]:
            found = claims.reclaim_expired(
                conn,
                now=utcnow(),
                max_recoveries=max_recoveries,
                skip_locked=self.skip_locked,
                live=live,
            )
            if found:
                self._wake(conn)
            return found

        return self.db.write(tx)

    def extend_leases(self, *, lease_seconds: float) -> int:
        """Give every running step a full lease from now (after an outage, D6)."""
        return self.db.write(
            lambda conn: claims.extend_leases(conn, now=utcnow(), lease_seconds=lease_seconds)
        )

    def enforce_deadlines(self) -> list[str]:
        return self.db.write(
            lambda conn: claims.enforce_deadlines(conn, now=utcnow(), skip_locked=self.skip_locked)
        )

    def release_claims(self, *, worker_id: str, step_record_ids: Sequence[str]) -> list[str]:
        """Queue again, at once, steps a stopping worker gives back; returns their ids."""

        def tx(conn: sa.Connection) -> list[str]:
            released = claims.release(
                conn,
                worker_id=worker_id,
                step_record_ids=step_record_ids,
                now=utcnow(),
                skip_locked=self.skip_locked,
            )
            if released:
                self._wake(conn)
            return released

        return self.db.write(tx)

    def record_progress(self, step: ClaimedStep, data: dict[str, Any]) -> bool:
        """Append a progress event for a step still held; False if it is not."""
        return self.db.write(
            lambda conn: claims.report_progress(
                conn, step, data, now=utcnow(), skip_locked=self.skip_locked
            )
        )

    def held_by(self, step_record_ids: Sequence[str], worker_id: str) -> set[str]:
        with self.db.read() as conn:
            return claims.held_by(conn, step_record_ids, worker_id)

    # -- workers --------------------------------------------------------------------------

    def register_worker(
        self, worker_id: str, concurrency: int, *, version: str = __version__
    ) -> None:
        """Record a worker process running Podium ``version`` (this process's by default)."""
        self.db.write(
            lambda conn: workers.register(
                conn, worker_id, concurrency, now=utcnow(), version=version
            )
        )

    def stop_worker(self, worker_id: str) -> None:
        self.db.write(lambda conn: workers.stop(conn, worker_id, now=utcnow()))

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
