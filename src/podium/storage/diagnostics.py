"""Read-only queries for ``podium doctor`` (spec section 16): the facts its checks judge.

Every query here is bounded and uses an existing index, so that the whole doctor stays cheap
at 100,000 runs: active runs come from ``ix_runs_status``, their last event from the
``(run_id, sequence)`` unique index, their open steps from ``ix_steps_run_status``, and
recent steps from ``ix_steps_claimable`` (``status, queued_at``). Nothing here writes, except
:func:`queue_ready_steps`, the one repair the doctor's ``--fix`` makes itself (through
:class:`~podium.storage.runtx.RunTx`, as a compare-and-set).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from podium.domain.statuses import StepStatus
from podium.storage.runtx import lock_run
from podium.storage.tables import definitions, events, runs, steps

ACTIVE_RUN_STATUSES = ("planning", "running")
OPEN_STEP_STATUSES = ("pending", "queued", "running")
STARTED_STEP_STATUSES = ("running", "completed", "failed")
_CHUNK = 500


@dataclass(frozen=True)
class ActiveRun:
    id: str
    organization_slug: str
    definition_name: str
    definition_version: str
    status: str
    max_parallel_steps: int
    created_at: datetime
    deadline_at: datetime | None
    last_event_at: datetime | None


@dataclass(frozen=True)
class OpenStep:
    id: str
    run_id: str
    step_id: str
    status: str
    attempt: int
    deps_remaining: int
    lease_owner: str | None
    lease_expires_at: datetime | None
    available_at: datetime | None
    queued_at: datetime | None
    started_at: datetime | None


@dataclass(frozen=True)
class InFlight:
    run_id: str
    organization_slug: str
    status: str
    action: dict[str, Any]


@dataclass(frozen=True)
class FailedStep:
    run_id: str
    organization_slug: str
    step_record_id: str
    step_id: str
    position: int
    ended_at: datetime | None
    error: dict[str, Any] | None


@dataclass(frozen=True)
class FinishedStep:
    run_id: str
    organization_slug: str
    definition_name: str
    step_id: str
    agent: str | None
    input: Any
    queued_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None


@dataclass(frozen=True)
class ActiveDefinition:
    organization_slug: str
    name: str
    version: str
    document: dict[str, Any]


def _org(column: sa.ColumnElement[Any], organization: str | None) -> list[sa.ColumnElement[bool]]:
    return [] if organization is None else [column == organization]


def _chunks(ids: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def database_now(conn: sa.Connection) -> datetime | None:
    """The database server's clock (UTC), or None when it cannot be parsed."""
    if conn.dialect.name == "sqlite":
        text = conn.exec_driver_sql("SELECT strftime('%Y-%m-%dT%H:%M:%f+00:00','now')").scalar()
        return datetime.fromisoformat(str(text)) if text else None
    value = conn.exec_driver_sql("SELECT now()").scalar()
    return value if isinstance(value, datetime) else None


def sqlite_pragmas(conn: sa.Connection) -> dict[str, Any]:
    """``journal_mode`` and ``busy_timeout`` of a connection of the pool, and the path of
    its main database file ``file`` (None in memory) (SQLite only)."""
    files = {row[1]: row[2] for row in conn.exec_driver_sql("PRAGMA database_list")}
    return {
        "journal_mode": str(conn.exec_driver_sql("PRAGMA journal_mode").scalar()).lower(),
        "busy_timeout": int(conn.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0),
        "file": files.get("main") or None,
    }


def active_runs(
    conn: sa.Connection, organization: str | None, run_id: str | None
) -> list[ActiveRun]:
    """Runs in ``planning`` or ``running``, each with the time of its last event."""
    last = events.alias("last_event")
    query = (
        sa.select(
            runs.c.id,
            runs.c.organization_slug,
            runs.c.definition_name,
            runs.c.definition_version,
            runs.c.status,
            runs.c.max_parallel_steps,
            runs.c.created_at,
            runs.c.deadline_at,
            last.c.timestamp.label("last_event_at"),
        )
        .select_from(
            runs.outerjoin(
                last, sa.and_(last.c.run_id == runs.c.id, last.c.sequence == runs.c.last_sequence)
            )
        )
        .where(
            runs.c.status.in_(ACTIVE_RUN_STATUSES), *_org(runs.c.organization_slug, organization)
        )
    )
    if run_id is not None:
        query = query.where(runs.c.id == run_id)
    return [ActiveRun(**row) for row in conn.execute(query).mappings()]


def open_steps(conn: sa.Connection, run_ids: Sequence[str]) -> list[OpenStep]:
    """The pending, queued and running steps of ``run_ids``."""
    out: list[OpenStep] = []
    for chunk in _chunks(list(run_ids)):
        query = sa.select(
            steps.c.id,
            steps.c.run_id,
            steps.c.step_id,
            steps.c.status,
            steps.c.attempt,
            steps.c.deps_remaining,
            steps.c.lease_owner,
            steps.c.lease_expires_at,
            steps.c.available_at,
            steps.c.queued_at,
            steps.c.started_at,
        ).where(steps.c.run_id.in_(chunk), steps.c.status.in_(OPEN_STEP_STATUSES))
        out.extend(OpenStep(**row) for row in conn.execute(query).mappings())
    return out


def recoveries_in_flight(
    conn: sa.Connection, organization: str | None, run_id: str | None
) -> list[InFlight]:
    """Runs not yet ended (or failed) with an operator action still in flight."""
    query = sa.select(
        runs.c.id, runs.c.organization_slug, runs.c.status, runs.c.recovery_in_flight
    ).where(
        runs.c.status.in_(("planning", "running", "checkpoint", "failed")),
        runs.c.recovery_in_flight.is_not(None),
        *_org(runs.c.organization_slug, organization),
    )
    if run_id is not None:
        query = query.where(runs.c.id == run_id)
    return [
        InFlight(row.id, row.organization_slug, row.status, row.recovery_in_flight)
        for row in conn.execute(query)
        # a cleared action is stored as JSON null on some databases
        if isinstance(row.recovery_in_flight, dict)
    ]


def failed_steps_of_failed_runs(
    conn: sa.Connection, organization: str | None, run_id: str | None, limit: int
) -> list[FailedStep]:
    """The failed steps of failed runs that have more than one (at most ``limit`` runs).

    The runs are found by a grouped count on ``ix_steps_claimable`` (status first), so
    only the few runs that qualify are read in detail."""
    several = (
        sa.select(steps.c.run_id)
        .where(steps.c.status == "failed")
        .group_by(steps.c.run_id)
        .having(sa.func.count() > 1)
    )
    if run_id is not None:
        several = several.where(steps.c.run_id == run_id)
    query = (
        sa.select(
            steps.c.run_id,
            runs.c.organization_slug,
            steps.c.id.label("step_record_id"),
            steps.c.step_id,
            steps.c.position,
            steps.c.ended_at,
            steps.c.error,
        )
        .select_from(steps.join(runs, runs.c.id == steps.c.run_id))
        .where(
            steps.c.run_id.in_(several.limit(limit).scalar_subquery()),
            steps.c.status == "failed",
            runs.c.status == "failed",
            *_org(runs.c.organization_slug, organization),
        )
    )
    return [FailedStep(**row) for row in conn.execute(query).mappings()]


def _seconds(conn: sa.Connection, start: Any, end: Any) -> sa.ColumnElement[Any]:
    """``end - start`` in seconds, in SQL (SQLite keeps times as text)."""
    if conn.dialect.name == "sqlite":
        return (sa.func.julianday(end) - sa.func.julianday(start)) * 86400.0
    return sa.func.extract("epoch", end - start)


def queue_seconds(
    conn: sa.Connection,
    organization: str | None,
    since: datetime,
    until: datetime,
    limit: int,
) -> list[float]:
    """Queue times (``started_at - queued_at``, seconds) of steps queued in
    ``[since, until)`` that started, the newest ``limit``."""
    wait = _seconds(conn, steps.c.queued_at, steps.c.started_at)
    query = sa.select(wait).where(
        steps.c.status.in_(STARTED_STEP_STATUSES),
        steps.c.queued_at >= since,
        steps.c.queued_at < until,
        steps.c.started_at.is_not(None),
    )
    if organization is not None:
        query = query.join(runs, runs.c.id == steps.c.run_id).where(
            runs.c.organization_slug == organization
        )
    query = query.order_by(steps.c.queued_at.desc()).limit(limit)
    return [float(v) for v in conn.execute(query).scalars() if v is not None]


def among_newest_completed(since: datetime, scan: int) -> sa.ColumnElement[bool]:
    """Whether a step is among the ``scan`` newest steps completed since ``since`` (read
    through ``ix_steps_claimable``): the bound that keeps a check's cost flat however busy
    the day was."""
    newest = (
        sa.select(steps.c.id)
        .where(steps.c.status == "completed", steps.c.queued_at >= since)
        .order_by(steps.c.queued_at.desc())
        .limit(scan)
    )
    return steps.c.id.in_(newest.scalar_subquery())


def long_steps_since(
    conn: sa.Connection,
    organization: str | None,
    since: datetime,
    min_seconds: float,
    limit: int,
    scan: int,
) -> list[FinishedStep]:
    """Among the ``scan`` newest steps completed since ``since``, those that ran at least
    ``min_seconds``, with their resolved input (newest first, at most ``limit``). The scan
    bound keeps the cost flat however busy the day was."""
    took = _seconds(conn, steps.c.started_at, steps.c.ended_at)
    query = (
        sa.select(
            steps.c.run_id,
            runs.c.organization_slug,
            runs.c.definition_name,
            steps.c.step_id,
            steps.c.agent,
            steps.c.input,
            steps.c.queued_at,
            steps.c.started_at,
            steps.c.ended_at,
        )
        .select_from(steps.join(runs, runs.c.id == steps.c.run_id))
        .where(
            among_newest_completed(since, scan),
            steps.c.started_at.is_not(None),
            steps.c.ended_at.is_not(None),
            took >= min_seconds,
            *_org(runs.c.organization_slug, organization),
        )
        .order_by(steps.c.queued_at.desc())
        .limit(limit)
    )
    return [FinishedStep(**row) for row in conn.execute(query).mappings()]


def active_definitions(conn: sa.Connection, organization: str | None) -> list[ActiveDefinition]:
    """Active definition versions of ``organization`` and ``global`` (all when None)."""
    query = sa.select(
        definitions.c.organization_slug,
        definitions.c.name,
        definitions.c.version,
        definitions.c.document,
    ).where(definitions.c.status == "active")
    if organization is not None:
        query = query.where(definitions.c.organization_slug.in_((organization, "global")))
    return [ActiveDefinition(**row) for row in conn.execute(query).mappings()]


def run_snapshot(conn: sa.Connection, run_id: str) -> dict[str, Any] | None:
    value = conn.execute(sa.select(runs.c.snapshot).where(runs.c.id == run_id)).scalar()
    return value if isinstance(value, dict) else None


def queue_ready_steps(
    conn: sa.Connection,
    run_id: str,
    step_record_ids: Sequence[str],
    now: datetime,
    *,
    skip_locked: bool,
) -> list[str]:
    """Queue pending steps whose dependencies are all met and whose retry time has come,
    as a compare-and-set: a step that moved meanwhile is left alone. Returns those queued."""
    rtx = lock_run(conn, run_id, now, skip_locked=skip_locked)
    if rtx.status not in ACTIVE_RUN_STATUSES:
        return []
    ready = sa.and_(
        steps.c.deps_remaining == 0,
        sa.or_(steps.c.available_at.is_(None), steps.c.available_at <= now),
    )
    moved = rtx.move_steps(
        list(step_record_ids),
        StepStatus.PENDING,
        StepStatus.QUEUED,
        data={"reason": "doctor: pending with its dependencies met"},
        guard=ready,
    )
    rtx.close()
    return [m.id for m in moved]
