"""Reads: runs, steps, attempts, events and workers as plain records."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from podium.domain.events import EventType
from podium.domain.limits import MAX_EVENT_VALUE_BYTES, bounded_members
from podium.domain.statuses import StepStatus
from podium.errors import InvalidInput, NotFound
from podium.storage.outputs import bounded_leaf_outputs, read_if_small
from podium.storage.records import (
    AttemptRecord,
    EventRecord,
    RunEnd,
    RunPosition,
    RunRecord,
    StepRecord,
    WorkerRecord,
)
from podium.storage.tables import events, runs, steps, workers

RUN_COLUMNS = [c for c in runs.c if c.name != "snapshot"]
# A run row's outputs up to this size (as stored text) are read as they are; larger ones
# are full copies written before outputs were stored once (bounded outputs of many steps
# can also pass it): they are rebuilt from the step records instead.
OUTPUTS_READ_BYTES = 1024 * 1024


def _run(row: sa.RowMapping) -> RunRecord:
    return RunRecord(**{k: v for k, v in row.items()})


def get_run(conn: sa.Connection, run_id: str, organization: str | None = None) -> RunRecord:
    """One run; :class:`NotFound` if absent or of another organization."""
    query = sa.select(*RUN_COLUMNS).where(runs.c.id == run_id)
    if organization is not None:
        query = query.where(runs.c.organization_slug == organization)
    row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"run {run_id} not found")
    return _run(row)


def run_position(conn: sa.Connection, run_id: str) -> RunPosition:
    """The run's status and last event sequence; :class:`NotFound` if absent."""
    row = conn.execute(
        sa.select(runs.c.status, runs.c.last_sequence).where(runs.c.id == run_id)
    ).first()
    if row is None:
        raise NotFound(f"run {run_id} not found")
    return RunPosition(status=str(row.status), last_sequence=int(row.last_sequence))


def run_end(conn: sa.Connection, run_id: str) -> RunEnd:
    """The run's status, last sequence, error and bounded outputs (see
    :mod:`podium.storage.outputs`); :class:`NotFound` if absent.

    Runs completed before outputs were stored once hold full copies in their row: those are
    not read, their outputs are rebuilt from the step records one large value at a time."""
    row = conn.execute(
        sa.select(
            runs.c.id,
            runs.c.status,
            runs.c.last_sequence,
            runs.c.error,
            *read_if_small(runs.c.outputs, OUTPUTS_READ_BYTES),
        ).where(runs.c.id == run_id)
    ).first()
    if row is None:
        raise NotFound(f"run {run_id} not found")
    found = row.outputs
    if row.large:
        found = bounded_leaf_outputs(conn, run_id)
    elif found is not None:
        found = bounded_members(found)
    return RunEnd(
        id=row.id,
        status=str(row.status),
        last_sequence=int(row.last_sequence),
        outputs=found,
        error=row.error,
    )


def find_run_id(conn: sa.Connection, prefix: str, organization: str | None = None) -> str:
    """The run whose id is ``prefix`` or starts with it (at least 8 characters), like git's
    short hashes. :class:`NotFound` if none; :class:`InvalidInput` if several match."""
    prefix = prefix.strip().lower()
    query = sa.select(runs.c.id)
    if organization is not None:
        query = query.where(runs.c.organization_slug == organization)
    if len(prefix) >= 36:
        found = list(conn.execute(query.where(runs.c.id == prefix)).scalars())
    elif len(prefix) >= 8 and all(ch in "0123456789abcdef-" for ch in prefix):
        found = list(
            conn.execute(
                query.where(runs.c.id.startswith(prefix, autoescape=True)).limit(2)
            ).scalars()
        )
    else:
        found = []
    if not found:
        raise NotFound(f"run {prefix} not found")
    if len(found) > 1:
        raise InvalidInput(f"run id prefix {prefix} matches several runs: give more of it")
    return str(found[0])


def last_sequences(
    conn: sa.Connection, run_ids: Sequence[str], organization: str | None = None
) -> dict[str, int]:
    """The last event sequence of each run of ``run_ids`` that exists (and is of
    ``organization``); absent ones are left out."""
    query = sa.select(runs.c.id, runs.c.last_sequence).where(runs.c.id.in_(list(run_ids)))
    if organization is not None:
        query = query.where(runs.c.organization_slug == organization)
    return {str(r.id): int(r.last_sequence) for r in conn.execute(query)}


def get_snapshot(conn: sa.Connection, run_id: str) -> dict[str, Any]:
    value = conn.execute(sa.select(runs.c.snapshot).where(runs.c.id == run_id)).scalar()
    if value is None:
        raise NotFound(f"run {run_id} not found")
    return dict(value)


def list_runs(
    conn: sa.Connection,
    *,
    organization: str | None = None,
    statuses: Sequence[str] = (),
    definition: str | None = None,
    parent_run_id: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    before_id: str | None = None,
    search: str | None = None,
    limit: int = 50,
) -> list[RunRecord]:
    """Runs newest first; ``before_id`` continues a previous page (ids are time-ordered)."""
    query = sa.select(*RUN_COLUMNS)
    if organization is not None:
        query = query.where(runs.c.organization_slug == organization)
    if definition is not None:
        query = query.where(runs.c.definition_name == definition)
    if parent_run_id is not None:
        query = query.where(runs.c.parent_run_id == parent_run_id)
    if created_after is not None:
        query = query.where(runs.c.created_at >= created_after)
    if created_before is not None:
        query = query.where(runs.c.created_at < created_before)
    if before_id is not None:
        query = query.where(runs.c.id < before_id)
    if search:
        query = query.where(
            sa.or_(
                runs.c.id.startswith(search.lower(), autoescape=True),
                runs.c.definition_name.contains(search, autoescape=True),
            )
        )
    wanted = list(dict.fromkeys(statuses))
    if organization is not None and len(wanted) > 1:
        # the newest of each status (one range of ix_runs_org_status_id each), merged: with
        # the statuses in one IN, SQLite reads the organization's runs in id order and
        # tests each one, over all of them when none matches ("active" on a quiet day)
        newest = [
            query.where(runs.c.status == s).order_by(runs.c.id.desc()).limit(limit).subquery()
            for s in wanted
        ]
        merged = sa.union_all(*(sa.select(n) for n in newest)).subquery()
        query = sa.select(merged).order_by(merged.c.id.desc()).limit(limit)
    else:
        if wanted:
            query = query.where(runs.c.status.in_(wanted))
        query = query.order_by(runs.c.id.desc()).limit(limit)
    return [_run(r) for r in conn.execute(query).mappings()]


def step_counts(conn: sa.Connection, run_id: str) -> dict[str, int]:
    rows = conn.execute(
        sa.select(steps.c.status, sa.func.count())
        .where(steps.c.run_id == run_id)
        .group_by(steps.c.status)
    ).all()
    return {str(r[0]): int(r[1]) for r in rows}


def steps_of(conn: sa.Connection, run_id: str) -> list[StepRecord]:
    rows = conn.execute(
        sa.select(*[c for c in steps.c if c.name != "deps_remaining"])
        .where(steps.c.run_id == run_id)
        .order_by(steps.c.position)
    ).mappings()
    return [StepRecord(**dict(r)) for r in rows]


def get_step(conn: sa.Connection, step_record_id: str, run_id: str | None = None) -> StepRecord:
    query = sa.select(*[c for c in steps.c if c.name != "deps_remaining"]).where(
        steps.c.id == step_record_id
    )
    if run_id is not None:
        query = query.where(steps.c.run_id == run_id)
    row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"step {step_record_id} not found")
    return StepRecord(**dict(row))


ATTEMPT_END = {
    EventType.STEP_COMPLETED: "completed",
    EventType.STEP_FAILED: "failed",
    EventType.STEP_RETRY_SCHEDULED: "retry_scheduled",
    EventType.STEP_CHECKPOINT_PENDING: "checkpoint_pending",
}


def attempts_of(conn: sa.Connection, step_record_id: str) -> list[AttemptRecord]:
    """The step's attempt history, read from its events (the event log is the audit trail).

    An attempt starts at ``orchestration.step.running`` and ends at the step's next completed,
    failed, retry or checkpoint event, or at a ``worker_lost`` re-queue. An attempt still
    open has outcome ``running`` (or ``aborted`` if the step was aborted meanwhile).
    """
    step = get_step(conn, step_record_id)
    rows = conn.execute(
        sa.select(events.c.type, events.c.timestamp, events.c.data)
        .where(events.c.run_id == step.run_id, events.c.step_record_id == step_record_id)
        .order_by(events.c.sequence)
    ).all()
    found: list[AttemptRecord] = []
    current: dict[str, Any] | None = None
    for row in rows:
        data = row.data or {}
        if row.type == EventType.STEP_RUNNING:
            current = {
                "step_record_id": step_record_id,
                "attempt": data.get("attempt", 0),
                "generation": data.get("generation", 1),
                "claim_token": data.get("claimToken", 0),
                "worker_id": data.get("workerId"),
                "started_at": row.timestamp,
            }
            continue
        if current is None:
            continue
        outcome = ATTEMPT_END.get(EventType(row.type)) if row.type in ATTEMPT_END else None
        if row.type == EventType.STEP_QUEUED and data.get("reason") in (
            "worker_lost",
            "lease_expired",
        ):
            outcome = str(data["reason"])
        if outcome is None:
            continue
        found.append(
            AttemptRecord(
                **current, outcome=outcome, error=data.get("error"), ended_at=row.timestamp
            )
        )
        current = None
    if current is not None:
        outcome = "aborted" if step.status == StepStatus.ABORTED else str(step.status)
        found.append(
            AttemptRecord(**current, outcome=outcome, error=step.error, ended_at=step.ended_at)
        )
    return found


def events_after(
    conn: sa.Connection, run_id: str, after: int = 0, limit: int = 1000
) -> list[EventRecord]:
    """The run's events with ``sequence > after``, in order."""
    rows = conn.execute(
        sa.select(events)
        .where(events.c.run_id == run_id, events.c.sequence > after)
        .order_by(events.c.sequence)
        .limit(limit)
    ).mappings()
    return [EventRecord(**dict(r)) for r in rows]


def bounded_events_after(
    conn: sa.Connection, run_id: str, after: int = 0, limit: int = 1000
) -> list[EventRecord]:
    """:func:`events_after` with each large member of an event's data as
    ``{"truncated": true, "bytes": N}`` (:func:`~podium.domain.limits.bounded_members`).

    Events small as stored come in one read; each larger one is read on its own and
    bounded at once, so a page costs at most ``limit`` small events plus one large one in
    memory, whatever the log holds (events written before values were bounded, T2)."""
    columns = [c for c in events.c if c.name != "data"]
    rows = conn.execute(
        sa.select(*columns, *read_if_small(events.c.data, MAX_EVENT_VALUE_BYTES))
        .where(events.c.run_id == run_id, events.c.sequence > after)
        .order_by(events.c.sequence)
        .limit(limit)
    ).mappings()
    found: list[EventRecord] = []
    for row in rows.all():
        values = {c.name: row[c.name] for c in columns}
        data = row["data"]
        if row["large"]:
            data = conn.execute(sa.select(events.c.data).where(events.c.id == row["id"])).scalar()
        found.append(EventRecord(**values, data=bounded_members(data or {})))
    return found


def list_workers(conn: sa.Connection, *, alive_since: datetime | None = None) -> list[WorkerRecord]:
    query = sa.select(workers).order_by(workers.c.started_at)
    if alive_since is not None:
        query = query.where(workers.c.heartbeat_at >= alive_since, workers.c.stopped_at.is_(None))
    return [WorkerRecord(**dict(r)) for r in conn.execute(query).mappings()]
