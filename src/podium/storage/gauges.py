"""The state behind the metrics' gauges, read from the database at scrape time.

Each count is one indexed query (``ix_runs_status``, ``ix_steps_lease``,
``ix_steps_claimable``, ``ix_approvals_status``), so a scrape stays cheap with 100,000 runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from podium.storage.database import Database
from podium.storage.tables import approvals, runs, steps, webhook_deliveries, workers

ACTIVE_RUN_STATUSES = ("planning", "running", "checkpoint")
STALLED_AFTER = timedelta(minutes=15)
WORKER_ALIVE_WITHIN = timedelta(minutes=1)


@dataclass(frozen=True)
class StateCounts:
    runs_active: dict[str, int] = field(default_factory=dict)
    in_flight: int = 0
    queued: int = 0
    oldest_queued_seconds: float = 0.0
    stalled_runs: int = 0
    approvals: int = 0
    dead_letters: int = 0
    workers: int = 0


def _count(table: sa.Table, *where: sa.ColumnElement[bool]) -> sa.ScalarSelect[int]:
    return sa.select(sa.func.count()).select_from(table).where(*where).scalar_subquery()


def read_state(db: Database, now: datetime) -> StateCounts:
    """Every gauge's value at ``now``: one statement, one round trip."""
    active = [_count(runs, runs.c.status == status) for status in ACTIVE_RUN_STATUSES]
    query = sa.select(
        *active,
        _count(steps, steps.c.status == "running", steps.c.lease_expires_at > now),
        _count(steps, steps.c.status == "queued"),
        sa.select(sa.func.min(steps.c.queued_at))
        .where(steps.c.status == "queued")
        .scalar_subquery(),
        _count(runs, runs.c.status == "running", runs.c.updated_at < now - STALLED_AFTER),
        _count(approvals, approvals.c.status == "pending"),
        _count(webhook_deliveries, webhook_deliveries.c.status == "dead"),
        _count(
            workers,
            workers.c.stopped_at.is_(None),
            workers.c.heartbeat_at > now - WORKER_ALIVE_WITHIN,
        ),
    )
    with db.read() as conn:
        row = conn.execute(query).one()
    n = len(ACTIVE_RUN_STATUSES)
    in_flight, queued, oldest, stalled, pending, dead, alive = row[n:]
    return StateCounts(
        runs_active={status: int(row[i]) for i, status in enumerate(ACTIVE_RUN_STATUSES)},
        in_flight=int(in_flight),
        queued=int(queued),
        oldest_queued_seconds=_age(oldest, now),
        stalled_runs=int(stalled),
        approvals=int(pending),
        dead_letters=int(dead),
        workers=int(alive),
    )


def _age(oldest: object, now: datetime) -> float:
    """Seconds since ``oldest`` (0 for None); SQLite returns MIN() of a datetime as text."""
    if oldest is None:
        return 0.0
    if isinstance(oldest, str):
        oldest = datetime.fromisoformat(oldest)
    assert isinstance(oldest, datetime)
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    return max((now - oldest).total_seconds(), 0.0)
