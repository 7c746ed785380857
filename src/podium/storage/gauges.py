"""The state behind the metrics' gauges, read from the database at scrape time.

Each count is one indexed query (``ix_runs_status``, ``ix_steps_lease``,
``ix_steps_claimable``, ``ix_approvals_status``), so a scrape stays cheap with 100,000 runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa

from podium.storage.database import Database
from podium.storage.tables import approvals, runs, steps, workers

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
    # TODO(webhooks): count the dead-letter table once the webhooks branch adds it
    dead_letters: int = 0
    workers: int = 0


def _count(conn: sa.Connection, table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
    return int(
        conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()
    )


def read_state(db: Database, now: datetime) -> StateCounts:
    """Every gauge's value at ``now``, in one read transaction."""
    with db.read() as conn:
        active = {status: 0 for status in ACTIVE_RUN_STATUSES}
        rows = conn.execute(
            sa.select(runs.c.status, sa.func.count())
            .where(runs.c.status.in_(ACTIVE_RUN_STATUSES))
            .group_by(runs.c.status)
        ).all()
        active.update({r[0]: int(r[1]) for r in rows})
        oldest = conn.execute(
            sa.select(sa.func.min(steps.c.queued_at)).where(steps.c.status == "queued")
        ).scalar()
        if isinstance(oldest, str):  # SQLite's MIN() of a datetime column is text
            oldest = datetime.fromisoformat(oldest).replace(tzinfo=now.tzinfo)
        elif oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=now.tzinfo)
        return StateCounts(
            runs_active=active,
            in_flight=_count(
                conn, steps, steps.c.status == "running", steps.c.lease_expires_at > now
            ),
            queued=_count(conn, steps, steps.c.status == "queued"),
            oldest_queued_seconds=max((now - oldest).total_seconds(), 0.0) if oldest else 0.0,
            stalled_runs=_count(
                conn, runs, runs.c.status == "running", runs.c.updated_at < now - STALLED_AFTER
            ),
            approvals=_count(conn, approvals, approvals.c.status == "pending"),
            workers=_count(
                conn,
                workers,
                workers.c.stopped_at.is_(None),
                workers.c.heartbeat_at > now - WORKER_ALIVE_WITHIN,
            ),
        )
