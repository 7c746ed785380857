"""State changes of one run inside one write transaction.

:func:`lock_run` takes the run's row lock first (PostgreSQL ``FOR UPDATE``; SQLite holds the
database lock from ``BEGIN IMMEDIATE``), so concurrent writers of one run are serialised and
each sees what the previous one committed. Every status change goes through
:meth:`RunTx.move_run` or :meth:`RunTx.move_steps`, which check the transition table and emit
the event; :meth:`RunTx.close` writes the events with consecutive sequence numbers and the
run row, before the transaction commits. State and events therefore commit together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from podium.domain.events import EventType
from podium.domain.ids import new_id
from podium.domain.limits import bounded_members
from podium.domain.statuses import (
    RunStatus,
    StepStatus,
    check_run_transition,
    check_step_transition,
    run_status_from_steps,
)
from podium.errors import NotFound
from podium.storage import observe, outbox, statements
from podium.storage.dialects import send_wakeup
from podium.storage.tables import runs, steps

RUN_EVENT_FOR_STATUS = {
    RunStatus.COMPLETED: EventType.RUN_COMPLETED,
    RunStatus.FAILED: EventType.RUN_FAILED,
    RunStatus.ABORTED: EventType.RUN_ABORTED,
}

# outcomes that end what an operator action started on a step
SETTLING = frozenset(
    {
        StepStatus.COMPLETED,
        StepStatus.FAILED,
        StepStatus.SKIPPED,
        StepStatus.ABORTED,
        StepStatus.CHECKPOINT_PENDING,
    }
)

# wake-up payload prefix: the run's event log grew (live streams then read it)
EVENTS_WAKEUP = "events:"

STEP_EVENT_FOR_STATUS = {
    StepStatus.QUEUED: EventType.STEP_QUEUED,
    StepStatus.RUNNING: EventType.STEP_RUNNING,
    StepStatus.COMPLETED: EventType.STEP_COMPLETED,
    StepStatus.FAILED: EventType.STEP_FAILED,
    StepStatus.SKIPPED: EventType.STEP_SKIPPED,
    StepStatus.CHECKPOINT_PENDING: EventType.STEP_CHECKPOINT_PENDING,
    StepStatus.PENDING: EventType.STEP_RETRY_SCHEDULED,
}


class StepMoved:
    """A step row as returned by a guarded status update (``row`` has any extra columns)."""

    __slots__ = ("id", "row", "status", "step_id")

    def __init__(self, row: sa.Row[Any], status: StepStatus) -> None:
        self.row = row
        self.id: str = row.id
        self.step_id: str = row.step_id
        self.status = status


class RunTx:
    """A write transaction's handle on one locked run."""

    def __init__(
        self,
        conn: sa.Connection,
        row: Mapping[str, Any] | sa.RowMapping,
        now: datetime,
        *,
        skip_locked: bool,
    ) -> None:
        self.conn = conn
        self.now = now
        self.run_id: str = row["id"]
        self.organization_slug: str = row["organization_slug"]
        self.status = RunStatus(row["status"])
        self.max_parallel_steps: int = row["max_parallel_steps"]
        self._sequence: int = row["last_sequence"]
        self.first_sequence = self._sequence
        self._events: list[dict[str, Any]] = []
        self._run_changes: dict[str, Any] = {}
        self.skip_locked = skip_locked
        self.queued_any = False
        self.recovery_in_flight: dict[str, Any] | None = row.get("recovery_in_flight")
        self._definition_name: str | None = row.get("definition_name")
        self._created_at: datetime | None = row.get("created_at")

    # -- events -------------------------------------------------------------------------

    def emit(
        self,
        type: EventType,
        data: dict[str, Any],
        *,
        step_id: str | None = None,
        step_record_id: str | None = None,
    ) -> None:
        """Buffer one event; it gets the run's next sequence number."""
        self._sequence += 1
        self._events.append(
            {
                "id": new_id(),
                "run_id": self.run_id,
                "sequence": self._sequence,
                "type": str(type),
                "organization_slug": self.organization_slug,
                "timestamp": self.now,
                "step_id": step_id,
                "step_record_id": step_record_id,
                "data": data,
            }
        )

    # -- run ------------------------------------------------------------------------------

    def move_run(self, new: RunStatus, data: dict[str, Any] | None = None, **fields: Any) -> None:
        """Change the run's status (checked) and emit its event; no-op if already there."""
        if new == self.status:
            return
        check_run_transition(self.status, new)
        previous, self.status = self.status, new
        self._run_changes["status"] = str(new)
        if new in RUN_EVENT_FOR_STATUS:
            self._run_changes["ended_at"] = self.now
            self.clear_recovery()
            self._observe_end(new)
        self._run_changes.update(fields)
        payload = {"status": str(new), "previousStatus": str(previous), **(data or {})}
        self.emit(RUN_EVENT_FOR_STATUS.get(new, EventType.RUN_UPDATED), payload)

    def _observe_end(self, new: RunStatus) -> None:
        """Tell the metrics, once this transaction commits, that the run ended (issue 12)."""
        name, created = self._definition_name, self._created_at
        if name is None or created is None:  # a handle made from a row without them
            row = self.conn.execute(
                sa.select(runs.c.definition_name, runs.c.created_at).where(runs.c.id == self.run_id)
            ).first()
            if row is None:
                return
            name, created = row.definition_name, row.created_at
        seconds = (self.now - created).total_seconds()
        observe.note(self.conn, observe.RunEnded(self.run_id, name, str(new), seconds))

    # -- operator actions in flight -------------------------------------------------------

    def start_recovery(self, action: dict[str, Any]) -> None:
        """Mark an operator action in flight until its step settles (spec section 8)."""
        self.recovery_in_flight = action
        self._run_changes["recovery_in_flight"] = action

    def step_settled(self, step_record_id: str) -> None:
        """A step reached an outcome; an operator action waiting for it is done."""
        flight = self.recovery_in_flight
        if flight is not None and flight.get("stepRecordId") == step_record_id:
            self.clear_recovery()

    def clear_recovery(self) -> None:
        if self.recovery_in_flight is not None:
            self.recovery_in_flight = None
            self._run_changes["recovery_in_flight"] = None

    # -- steps ----------------------------------------------------------------------------

    def move_steps(
        self,
        ids: Sequence[str],
        expected: StepStatus | Iterable[StepStatus],
        new: StepStatus,
        *,
        values: Mapping[str, Any] | None = None,
        data: dict[str, Any] | Callable[[sa.Row[Any]], dict[str, Any]] | None = None,
        event: EventType | None = None,
        guard: sa.ColumnElement[bool] | None = None,
        returning: Sequence[sa.ColumnElement[Any]] = (),
    ) -> list[StepMoved]:
        """Move the given steps of this run from an expected status to ``new``.

        Only rows still in an expected status (and matching ``guard``, such as a fencing
        token) change; the others are left alone and are not returned. Each moved step gets
        its event (``event`` or the default for ``new``) carrying ``data`` (or
        ``data(row)``, computed from the updated row with the ``returning`` columns).
        """
        if not ids:
            return []
        expected_set = {expected} if isinstance(expected, StepStatus) else set(expected)
        for status in expected_set:
            check_step_transition(status, new)
        where = [
            steps.c.run_id == self.run_id,
            steps.c.id.in_(ids) if len(ids) > 1 else steps.c.id == ids[0],
            steps.c.status.in_([str(s) for s in expected_set])
            if len(expected_set) > 1
            else steps.c.status == str(next(iter(expected_set))),
        ]
        if guard is not None:
            where.append(guard)
        update = {"status": str(new), "updated_at": self.now, **(values or {})}
        if new is StepStatus.QUEUED:
            update.setdefault("queued_at", self.now)
            self.queued_any = True
        rows = self.conn.execute(
            steps.update()
            .where(*where)
            .values(update)
            .returning(steps.c.id, steps.c.step_id, *returning)
        ).all()
        moved = [StepMoved(r, new) for r in rows]
        order = {sid: i for i, sid in enumerate(ids)}
        moved.sort(key=lambda m: order.get(m.id, 0))
        if new in SETTLING:
            for m in moved:
                self.step_settled(m.id)
        # aborted steps have no event of their own: the run's aborted event lists them
        kind = event or STEP_EVENT_FOR_STATUS.get(new)
        if kind is None:
            return moved
        for m in moved:
            extra = data(m.row) if callable(data) else (data or {})
            payload = {"status": str(new), **extra}
            self.emit(kind, payload, step_id=m.step_id, step_record_id=m.id)
        return moved

    # -- fast paths: prebuilt statements, the same checks and events ---------------------

    def start_new_run(
        self, row: dict[str, Any], step_rows: Sequence[Mapping[str, Any]], created: dict[str, Any]
    ) -> None:
        """Insert this (new) run, ``row`` in status ``planning``, with its step rows.

        It passes through ``planning`` to ``running`` inside the transaction, so it is
        written in its final state with the events of both: ``run.created`` (``created``
        is its data), ``step.queued`` for each step row that starts queued, ``run.updated``.
        """
        self.emit(EventType.RUN_CREATED, {"status": str(self.status), **created})
        for step in step_rows:
            if step["status"] == StepStatus.QUEUED:
                self.emit(
                    EventType.STEP_QUEUED,
                    {"status": str(StepStatus.QUEUED)},
                    step_id=step["step_id"],
                    step_record_id=step["id"],
                )
        check_run_transition(self.status, RunStatus.RUNNING)
        self.emit(
            EventType.RUN_UPDATED,
            {"status": str(RunStatus.RUNNING), "previousStatus": str(self.status)},
        )
        self.status = RunStatus.RUNNING
        row["status"] = str(RunStatus.RUNNING)
        row["last_sequence"] = self.last_sequence
        self.conn.execute(statements.INSERT_RUN, row)
        self.conn.execute(statements.INSERT_STEPS, list(step_rows))
        self.first_sequence = self.last_sequence
        self.write_events()
        self.announce()

    def claim_queued(
        self, *, worker_id: str, limit: int, lease_seconds: float
    ) -> list[sa.Row[Any]]:
        """Claim up to ``limit`` queued steps of this run for ``worker_id``, in definition
        order, within its ``maxParallelSteps`` and none while one of its steps has failed
        (fail-fast); each gets its ``step.running`` event. Returns the claimed rows (with
        ``attempt``, ``generation``, ``claim_token``, ``metadata``)."""
        check_step_transition(StepStatus.QUEUED, StepStatus.RUNNING)
        rows = self.conn.execute(
            statements.CLAIM_IN_RUN[self.conn.dialect.name],
            {
                "rid": self.run_id,
                "want": limit,
                "maxp": self.max_parallel_steps,
                "worker": worker_id,
                "expires": self.now + timedelta(seconds=lease_seconds),
                "now": self.now,
            },
        ).all()
        if not rows:
            return []
        rows = sorted(rows, key=lambda r: r.position)
        if self.recovery_in_flight is not None and self.recovery_in_flight.get("action") == "skip":
            self.clear_recovery()  # the engine took up what the skip released
        for r in rows:
            self.emit(
                EventType.STEP_RUNNING,
                {
                    "status": "running",
                    "attempt": r.attempt,
                    "generation": r.generation,
                    "claimToken": r.claim_token,
                    "workerId": worker_id,
                },
                step_id=r.step_id,
                step_record_id=r.id,
            )
        return rows

    def complete_step(
        self,
        step_record_id: str,
        step_id: str,
        *,
        claim_token: int,
        output: Any,
        resolved_input: Any,
        data: dict[str, Any],
        also: Callable[[], dict[str, Any]] | None = None,
    ) -> bool:
        """Complete a running step held under ``claim_token`` with ``output`` and emit
        ``step.completed`` (``data`` plus the output); False, and nothing written, if the
        claim is no longer current (fencing). ``also`` runs in the same transaction once the
        step completed (the step cache's write) and its answer joins the event's data."""
        check_step_transition(StepStatus.RUNNING, StepStatus.COMPLETED)
        done = self.conn.execute(
            statements.COMPLETE_STEP,
            {
                "sid": step_record_id,
                "token": claim_token,
                "output": output,
                "input": resolved_input,
                "now": self.now,
            },
        )
        if done.rowcount != 1:
            return False
        self._completed(step_record_id, step_id, output=output, data=data, also=also)
        return True

    def _completed(
        self,
        step_record_id: str,
        step_id: str,
        *,
        output: Any,
        data: dict[str, Any],
        also: Callable[[], dict[str, Any]] | None,
    ) -> None:
        """What follows a step's accepted completion in its transaction: the cache write,
        then ``step.completed``."""
        self.step_settled(step_record_id)
        extra = also() if also is not None else {}
        self.emit(
            EventType.STEP_COMPLETED,
            # the output is stored once, in the step record; the event carries it only when
            # small (live streams and webhooks read events)
            bounded_members({"status": "completed", **data, "output": output, **extra}),
            step_id=step_id,
            step_record_id=step_record_id,
        )

    def note_progress(
        self, step_record_id: str, step_id: str, *, claim_token: int, data: dict[str, Any]
    ) -> bool:
        """Emit ``step.progress`` for a step still running under ``claim_token``; False
        (nothing emitted) if it is not."""
        held = self.conn.execute(
            sa.select(steps.c.id).where(
                steps.c.id == step_record_id,
                steps.c.run_id == self.run_id,
                steps.c.claim_token == claim_token,
                steps.c.status == StepStatus.RUNNING,
            )
        ).first()
        if held is None:
            return False
        self.emit(
            EventType.STEP_PROGRESS,
            {"status": "running", **data},
            step_id=step_id,
            step_record_id=step_record_id,
        )
        return True

    def record_action(
        self, data: dict[str, Any], *, step_id: str | None, step_record_id: str | None
    ) -> None:
        """Emit ``recovery.action``: what an operator did (retry, skip) and why."""
        self.emit(EventType.RECOVERY_ACTION, data, step_id=step_id, step_record_id=step_record_id)

    def release_dependents(
        self, step_ids: Sequence[str], dependents: Mapping[str, list[str]]
    ) -> int:
        """Count ``step_ids`` (just completed or skipped) off their dependents; each pending
        dependent whose dependencies are now all completed or skipped becomes queued.

        Returns the number of dependents that became queued.
        """
        counts: dict[str, int] = {}
        for s in step_ids:
            for d in set(dependents.get(s, ())):
                counts[d] = counts.get(d, 0) + 1
        if not counts:
            return 0
        check_step_transition(StepStatus.PENDING, StepStatus.QUEUED)
        ready: list[sa.Row[Any]] = []
        for decrement in sorted(set(counts.values())):
            names = [t for t, c in counts.items() if c == decrement]
            rows = self.conn.execute(
                statements.RELEASE_DEPENDENTS,
                {"rid": self.run_id, "names": names, "d": decrement, "now": self.now},
            ).all()
            ready += [r for r in rows if r.status == StepStatus.QUEUED and r.deps_remaining == 0]
        return self._queued(ready)

    def _queued(self, ready: list[Any]) -> int:
        """Emit ``step.queued`` for the dependents that became queued, in definition order."""
        ready.sort(key=lambda r: r.position)
        for r in ready:
            self.emit(
                EventType.STEP_QUEUED, {"status": "queued"}, step_id=r.step_id, step_record_id=r.id
            )
        if ready:
            self.queued_any = True
        return len(ready)

    def complete_and_release(
        self,
        step_record_id: str,
        step_id: str,
        dependents: Mapping[str, list[str]],
        *,
        claim_token: int,
        output: Any,
        resolved_input: Any,
        data: dict[str, Any],
        also: Callable[[], dict[str, Any]] | None = None,
    ) -> tuple[bool, int]:
        """:meth:`complete_step`, then :meth:`release_dependents` of that step if it
        completed: (completed, dependents queued). The events are the same, in the same
        order. On PostgreSQL both are one statement (COMPLETE_AND_RELEASE): one round trip
        of a chain step's transaction fewer."""
        names = sorted(set(dependents.get(step_id, ())))
        if self.conn.dialect.name != "postgresql" or not names:
            completed = self.complete_step(
                step_record_id,
                step_id,
                claim_token=claim_token,
                output=output,
                resolved_input=resolved_input,
                data=data,
                also=also,
            )
            return completed, self.release_dependents([step_id], dependents) if completed else 0
        check_step_transition(StepStatus.RUNNING, StepStatus.COMPLETED)
        check_step_transition(StepStatus.PENDING, StepStatus.QUEUED)
        rows = self.conn.execute(
            statements.COMPLETE_AND_RELEASE,
            {
                "sid": step_record_id,
                "token": claim_token,
                "step_output": output,
                "step_input": resolved_input,
                "rid": self.run_id,
                "names": names,
                "d": 1,
                "now": self.now,
            },
        ).all()
        if not rows[0].completed:
            return False, 0
        self._completed(step_record_id, step_id, output=output, data=data, also=also)
        ready = [
            r
            for r in rows
            if r.id is not None and r.status == StepStatus.QUEUED and r.deps_remaining == 0
        ]
        return True, self._queued(ready)

    def step_counts(self) -> dict[str, int]:
        rows = self.conn.execute(statements.STEP_COUNTS, {"rid": self.run_id}).all()
        return {r[0]: int(r[1]) for r in rows}

    def settle(self, *, error: dict[str, Any] | None = None) -> RunStatus:
        """Apply the completion rule to the run after its steps changed."""
        if self.status.terminal and self.status is not RunStatus.FAILED:
            return self.status
        counts = self.step_counts()
        if counts.get(StepStatus.CHECKPOINT_PENDING) and counts.get(StepStatus.PENDING):
            # human checkpoints: steps pending on their dependencies cannot move the run,
            # only those waiting for a retry time can (spec section 3, run `checkpoint`)
            counts[StepStatus.PENDING] = self._pending_retries()
        new = run_status_from_steps(counts, current=self.status)
        if new == self.status:
            return new
        if new is RunStatus.COMPLETED:
            self.move_run(new, outputs=self._leaf_outputs())
        elif new is RunStatus.FAILED:
            failure = error or self._first_failure()
            self.move_run(new, {"error": failure}, error=failure)
        else:
            self.move_run(new)
        return new

    def _pending_retries(self) -> int:
        """Pending steps of this run due at a time (a retry), not waiting on dependencies."""
        return int(
            self.conn.execute(
                sa.select(sa.func.count()).where(
                    steps.c.run_id == self.run_id,
                    steps.c.status == StepStatus.PENDING,
                    steps.c.available_at.is_not(None),
                )
            ).scalar_one()
        )

    def _leaf_outputs(self) -> dict[str, Any]:
        """The run's outputs: the outputs of steps that nothing depends on, each large value
        as a truncation marker (an output is stored once, in its step record; T2)."""
        from podium.storage import outputs

        return outputs.bounded_leaf_outputs(self.conn, self.run_id)

    def _first_failure(self) -> dict[str, Any] | None:
        row = self.conn.execute(
            sa.select(steps.c.step_id, steps.c.error)
            .where(steps.c.run_id == self.run_id, steps.c.status == StepStatus.FAILED)
            .order_by(steps.c.ended_at)
            .limit(1)
        ).first()
        if row is None:
            return None
        return {"stepId": row.step_id, **(row.error or {})}

    # -- commit ---------------------------------------------------------------------------

    @property
    def last_sequence(self) -> int:
        """The sequence of the last event emitted so far."""
        return self._sequence

    def write_events(self) -> None:
        """Insert the buffered events (their run's listeners are woken after commit)."""
        events = self.take_events()
        if events:
            # with their webhook deliveries, in this transaction (W4)
            outbox.insert_with_deliveries(self.conn, events)
            announce_events(self.conn, [self.run_id])

    def take_events(self) -> list[dict[str, Any]]:
        """Hand over the buffered events (to be inserted by the caller)."""
        events, self._events = self._events, []
        return events

    @property
    def has_run_changes(self) -> bool:
        return bool(self._run_changes)

    def announce(self) -> None:
        """Wake listeners (after commit) to the run's new status."""
        send_wakeup(self.conn, f"run:{self.run_id}:{self.status}")

    def close(self) -> None:
        """Write the buffered events and the run row. Call once, before commit."""
        self.write_events()
        if self._run_changes:
            if "status" in self._run_changes:
                self.announce()
            values = {"last_sequence": self._sequence, "updated_at": self.now}
            values.update(self._run_changes)
            self.conn.execute(runs.update().where(runs.c.id == self.run_id).values(values))
        elif self._sequence != self.first_sequence:
            self.conn.execute(
                statements.BUMP_RUN,
                {"rid": self.run_id, "seq": self._sequence, "now": self.now},
            )
        self.first_sequence = self._sequence
        self._run_changes = {}


def lock_run(conn: sa.Connection, run_id: str, now: datetime, *, skip_locked: bool) -> RunTx:
    """Lock one run for this transaction; raise :class:`NotFound` if it does not exist."""
    # PostgreSQL: a row lock; SQLite already holds the database lock (BEGIN IMMEDIATE)
    query = statements.LOCK_RUN_FOR_UPDATE if skip_locked else statements.LOCK_RUN
    row = conn.execute(query, {"rid": run_id}).mappings().first()
    if row is None:
        raise NotFound(f"run {run_id} not found")
    return RunTx(conn, row, now, skip_locked=skip_locked)


def lock_runs(
    conn: sa.Connection,
    run_ids: Iterable[str],
    now: datetime,
    *,
    skip_locked: bool,
    wait: bool = False,
) -> list[RunTx]:
    """Lock several runs in id order (one order for every writer: no deadlocks).

    Without ``wait``, runs another transaction holds are skipped (PostgreSQL
    ``SKIP LOCKED``); with it, their locks are waited for. Runs that do not exist are left
    out of the result.
    """
    ids = sorted(set(run_ids))
    if not ids:
        return []
    query = statements.LOCK_RUNS  # SQLite already holds the database lock
    if skip_locked:  # PostgreSQL row locks
        query = statements.LOCK_RUNS_WAIT if wait else statements.LOCK_RUNS_SKIP_LOCKED
    return [
        RunTx(conn, row, now, skip_locked=skip_locked)
        for row in conn.execute(query, {"ids": ids}).mappings()
    ]


def close_all(rtxs: Sequence[RunTx]) -> None:
    """:meth:`RunTx.close` for several runs of one transaction, with one statement for all
    their events and one for all their sequence-only updates."""
    if not rtxs:
        return
    conn, now = rtxs[0].conn, rtxs[0].now
    events = [e for r in rtxs for e in r.take_events()]
    # runs whose only change is their event counter move it with the events' statement (on
    # PostgreSQL one round trip for both); the others write their row themselves
    bumps = []
    for r in rtxs:
        if not r.has_run_changes and r.last_sequence != r.first_sequence:
            bumps.append((r.run_id, r.last_sequence))
            r.first_sequence = r.last_sequence
    if events or bumps:
        outbox.insert_with_deliveries(conn, events, bumps=bumps, now=now)  # W4: deliveries too
    if events:
        announce_events(conn, {e["run_id"] for e in events})
    for r in rtxs:
        if r.has_run_changes:
            r.close()


def announce_events(conn: sa.Connection, run_ids: Iterable[str]) -> None:
    """Wake the listeners of each run with ``events:<runId>`` once ``conn`` commits: its
    event log grew. On PostgreSQL the database does it for every process, including this one
    (the trigger of migration 0004: one NOTIFY per run and statement, no extra round trip);
    on SQLite this process's listeners are woken after the commit."""
    if conn.dialect.name == "postgresql":
        return
    for run_id in run_ids:
        send_wakeup(conn, f"{EVENTS_WAKEUP}{run_id}")
