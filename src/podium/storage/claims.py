"""Claiming steps with a lease, renewing it, and recording what became of each attempt.

Every function here runs inside one write transaction (see :class:`~podium.storage.runtx.RunTx`).
A claim increases the step's ``claim_token``; completions and failures are accepted only
with the token of the current claim, so a worker that lost its lease cannot commit (D3).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from podium.domain.outcomes import ErrorCode, StepError
from podium.domain.statuses import RunStatus, StepStatus
from podium.storage import snapshots, statements
from podium.storage.records import ClaimedStep
from podium.storage.runtx import RunTx, lock_run, lock_runs
from podium.storage.tables import runs, steps, workers

# reason of a requeue whose owner is alive (not counted against maxRecoveries)
LEASE_EXPIRED = "lease_expired"


def claim(
    conn: sa.Connection,
    *,
    worker_id: str,
    capacity: int,
    lease_seconds: float,
    now: datetime,
    skip_locked: bool,
) -> list[ClaimedStep]:
    """Claim up to ``capacity`` queued steps, honouring each run's ``maxParallelSteps``.

    Steps of runs that have a failed step are not started (fail-fast). Runs another worker
    is claiming from right now are skipped, not waited for (PostgreSQL ``SKIP LOCKED``).
    """
    _promote_due_retries(conn, now, skip_locked=skip_locked)
    if capacity <= 0:
        return []
    candidates = conn.execute(statements.QUEUED_RUNS, {"scan": max(capacity * 4, 64)}).all()
    run_order: dict[str, int] = {}
    for row in candidates:
        run_order.setdefault(row.run_id, len(run_order))
    claimed: list[ClaimedStep] = []
    for rtx in sorted(
        lock_runs(conn, run_order, now, skip_locked=skip_locked),
        key=lambda r: run_order[r.run_id],
    ):
        if len(claimed) < capacity and rtx.status is RunStatus.RUNNING:
            claimed += claim_in_run(
                rtx,
                worker_id=worker_id,
                limit=capacity - len(claimed),
                lease_seconds=lease_seconds,
            )
        rtx.close()
    return claimed


def claim_in_run(
    rtx: RunTx, *, worker_id: str, limit: int, lease_seconds: float
) -> list[ClaimedStep]:
    """Claim up to ``limit`` queued steps of one locked run, in definition order, within its
    ``maxParallelSteps``; none while one of its steps has failed (fail-fast)."""
    rows = rtx.claim_queued(worker_id=worker_id, limit=limit, lease_seconds=lease_seconds)
    if not rows:
        return []
    plan = snapshots.plan_for(rtx.conn, rtx.run_id)
    reads = set().union(*(plan.reads(r.step_id) for r in rows))
    upstream: dict[str, Any] = {}
    if reads:
        upstream = dict(
            rtx.conn.execute(
                statements.UPSTREAM_OUTPUTS, {"rid": rtx.run_id, "names": sorted(reads)}
            ).all()
        )
    return [
        ClaimedStep(
            step_record_id=r.id,
            run_id=rtx.run_id,
            step_id=r.step_id,
            organization_slug=rtx.organization_slug,
            attempt=r.attempt,
            generation=r.generation,
            claim_token=r.claim_token,
            worker_id=worker_id,
            definition=plan.definition,
            parameters=plan.parameters,
            upstream={k: v for k, v in upstream.items() if k in plan.reads(r.step_id)},
            started_at=rtx.now,
            deadline_at=plan.deadline_at,
            metadata=r.metadata,
            readable_steps=plan.reads(r.step_id),
            queued_at=r.queued_at,
        )
        for r in rows
    ]


def _promote_due_retries(conn: sa.Connection, now: datetime, *, skip_locked: bool) -> None:
    """Queue pending steps whose retry time has come (in runs still moving forward)."""
    due = conn.execute(statements.DUE_RETRIES, {"now": now}).all()
    if not due:
        return
    by_run: dict[str, list[str]] = {}
    for row in due:
        by_run.setdefault(row.run_id, []).append(row.id)
    for rtx in lock_runs(conn, by_run, now, skip_locked=skip_locked):
        if rtx.status is RunStatus.RUNNING:
            rtx.move_steps(
                by_run[rtx.run_id],
                StepStatus.PENDING,
                StepStatus.QUEUED,
                values={"available_at": None},
                data={"reason": "retry_due"},
                guard=steps.c.available_at <= now,
            )
        rtx.close()


def set_runtime(
    conn: sa.Connection, step: ClaimedStep, key: str, value: Any, *, now: datetime
) -> bool:
    """Set ``metadata.runtime.<key>`` on a step still held under ``step``'s claim; False
    if the claim is no longer current."""
    current = conn.execute(
        sa.select(steps.c.metadata).where(
            steps.c.id == step.step_record_id,
            steps.c.claim_token == step.claim_token,
            steps.c.status == StepStatus.RUNNING,
        )
    ).scalar()
    if current is None:
        return False
    metadata = dict(current)
    runtime = dict(metadata.get("runtime") or {})
    runtime[key] = value
    metadata["runtime"] = runtime
    updated = conn.execute(
        steps.update()
        .where(steps.c.id == step.step_record_id, steps.c.claim_token == step.claim_token)
        .values(metadata=metadata, updated_at=now)
    )
    return updated.rowcount == 1


def renew_leases(
    conn: sa.Connection,
    *,
    worker_id: str,
    step_record_ids: Sequence[str],
    lease_seconds: float,
    now: datetime,
) -> set[str]:
    """Extend the leases of the steps this worker is working on; return those it still
    holds. A step the worker holds but no longer works on is not renewed, so its lease
    expires and the sweeper gives it to another worker."""
    conn.execute(workers.update().where(workers.c.id == worker_id).values(heartbeat_at=now))
    if not step_record_ids:
        return set()
    mine = sa.and_(
        steps.c.id.in_(step_record_ids),
        steps.c.lease_owner == worker_id,
        steps.c.status == StepStatus.RUNNING,
    )
    if conn.dialect.name != "postgresql":
        target: sa.ColumnElement[bool] = mine
    else:
        # Never wait on a step row another transaction holds: a group commit or an abort
        # cascade locks the rows of many runs in run order, a heartbeat in its own order,
        # and the two could deadlock. A row held elsewhere is renewed at the next beat.
        target = steps.c.id.in_(
            sa.select(steps.c.id).where(mine).with_for_update(skip_locked=True).scalar_subquery()
        )
    rows = conn.execute(
        steps.update()
        .where(target)
        .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
        .returning(steps.c.id)
    ).all()
    held = {r.id for r in rows}
    rest = [i for i in step_record_ids if i not in held]
    if rest and conn.dialect.name == "postgresql":
        # still this worker's as far as committed state says (read without waiting)
        held |= set(conn.execute(sa.select(steps.c.id).where(mine, steps.c.id.in_(rest))).scalars())
    return held


def extend_leases(conn: sa.Connection, *, now: datetime, lease_seconds: float) -> int:
    """Give every running step at least ``lease_seconds`` of lease from ``now``; return
    how many leases were extended.

    A sweeper calls this once the database is back after an outage that it saw: the leases
    that lapsed while nobody could renew them get a full lease again, so that live workers
    renew them before any sweeper counts them as lost (D6). A worker that died during the
    outage is found a lease later than usual.
    """
    until = now + timedelta(seconds=lease_seconds)
    result = conn.execute(
        steps.update()
        .where(
            steps.c.status == StepStatus.RUNNING,
            sa.or_(steps.c.lease_expires_at.is_(None), steps.c.lease_expires_at < until),
        )
        .values(lease_expires_at=until)
    )
    return int(result.rowcount or 0)


def reclaim_expired(
    conn: sa.Connection,
    *,
    now: datetime,
    max_recoveries: int,
    skip_locked: bool,
    live: Sequence[str] = (),
) -> list[tuple[str, str]]:
    """Take back steps whose lease expired (their worker died or hung).

    A step is queued again, up to ``max_recoveries`` times; after that it fails with
    ``worker_lost``. ``live`` steps are left alone: the sweeping worker runs them itself (its
    heartbeat was late, it is not lost). Returns ``(step_record_id, "requeued" | "failed")``
    pairs.

    A step whose owner is alive (its worker row has a heartbeat later than the step's
    lease expiry: it renewed its other leases but not this one) is queued again without
    counting a recovery (reason ``lease_expired``): the worker was not lost, and counting
    it would let database outages fail healthy steps as ``worker_lost`` (D6).
    """
    spared = set(live)
    expired = conn.execute(
        sa.select(
            steps.c.id,
            steps.c.run_id,
            steps.c.step_id,
            steps.c.recoveries,
            steps.c.attempt,
            steps.c.generation,
            steps.c.claim_token,
            steps.c.lease_owner,
            steps.c.lease_expires_at,
            steps.c.started_at,
            workers.c.heartbeat_at.label("owner_heartbeat_at"),
        )
        .select_from(steps.outerjoin(workers, workers.c.id == steps.c.lease_owner))
        .where(steps.c.status == StepStatus.RUNNING, steps.c.lease_expires_at < now)
        .limit(500)
    ).all()
    by_run: dict[str, list[Any]] = {}
    for row in expired:
        if row.id not in spared:
            by_run.setdefault(row.run_id, []).append(row)
    results: list[tuple[str, str]] = []
    for rtx in lock_runs(conn, by_run, now, skip_locked=skip_locked):
        for row in by_run[rtx.run_id]:
            results += _reclaim_one(rtx, row, max_recoveries)
        rtx.settle()
        rtx.close()
    return results


def _reclaim_one(rtx: RunTx, row: sa.Row[Any], max_recoveries: int) -> list[tuple[str, str]]:
    guard = sa.and_(steps.c.claim_token == row.claim_token, steps.c.lease_expires_at < rtx.now)
    lost = {"lease_owner": None, "lease_expires_at": None}
    error = StepError.of(
        ErrorCode.WORKER_LOST,
        f"worker {row.lease_owner} stopped renewing its lease "
        f"(recovery {row.recoveries + 1} of at most {max_recoveries})",
        workerId=row.lease_owner,
    )
    lost_data = {
        "attempt": row.attempt,
        "generation": row.generation,
        "claimToken": row.claim_token,
        "workerId": row.lease_owner,
    }
    if _owner_alive(row):
        moved = rtx.move_steps(
            [row.id],
            StepStatus.RUNNING,
            StepStatus.QUEUED,
            values=lost,
            data={**lost_data, "reason": LEASE_EXPIRED, "recoveries": row.recoveries},
            guard=guard,
        )
        return [(row.id, "requeued")] if moved else []
    if row.recoveries >= max_recoveries:
        err = {**error.to_dict(), "retryable": False}
        moved = rtx.move_steps(
            [row.id],
            StepStatus.RUNNING,
            StepStatus.FAILED,
            values={**lost, "error": err, "ended_at": rtx.now},
            data={**lost_data, "error": err},
            guard=guard,
        )
        outcome = "failed"
    else:
        err = error.to_dict()
        moved = rtx.move_steps(
            [row.id],
            StepStatus.RUNNING,
            StepStatus.QUEUED,
            values={**lost, "recoveries": row.recoveries + 1},
            data={
                **lost_data,
                "reason": str(ErrorCode.WORKER_LOST),
                "recoveries": row.recoveries + 1,
                "error": err,
            },
            guard=guard,
        )
        outcome = "requeued"
    if not moved:
        return []
    return [(row.id, outcome)]


def _owner_alive(row: sa.Row[Any]) -> bool:
    """Whether the step's worker heartbeated after the step's lease ran out (it is alive
    and renewing its other leases, so it was not lost)."""
    heartbeat, expired = row.owner_heartbeat_at, row.lease_expires_at
    if heartbeat is None or expired is None:
        return False
    # SQLite returns naive UTC datetimes; compare like with like
    return _naive(heartbeat) > _naive(expired)


def _naive(value: datetime) -> datetime:
    return value.replace(tzinfo=None) if value.tzinfo is not None else value


def enforce_deadlines(conn: sa.Connection, *, now: datetime, skip_locked: bool) -> list[str]:
    """Fail runs past their ``execution.timeoutSeconds`` deadline; return their ids.

    Running steps fail with ``run_timeout`` (their workers see the lease is gone and stop).
    """
    overdue = conn.execute(
        sa.select(runs.c.id).where(
            runs.c.status.in_([RunStatus.RUNNING, RunStatus.CHECKPOINT]),
            runs.c.deadline_at < now,
        )
    ).scalars()
    failed: list[str] = []
    for rtx in lock_runs(conn, list(overdue), now, skip_locked=skip_locked):
        if rtx.status not in (RunStatus.RUNNING, RunStatus.CHECKPOINT):
            rtx.close()
            continue
        error = StepError(
            code=ErrorCode.RUN_TIMEOUT,
            message="the run passed its execution.timeoutSeconds deadline",
            retryable=False,
        ).to_dict()
        running = list(
            conn.execute(
                sa.select(steps.c.id).where(
                    steps.c.run_id == rtx.run_id, steps.c.status == StepStatus.RUNNING
                )
            ).scalars()
        )
        rtx.move_steps(
            running,
            StepStatus.RUNNING,
            StepStatus.FAILED,
            values={"error": error, "ended_at": now, "lease_owner": None, "lease_expires_at": None},
            data={"error": error},
        )
        rtx.move_run(RunStatus.FAILED, {"error": error}, error=error)
        rtx.close()
        failed.append(rtx.run_id)
    return failed


def held_by(conn: sa.Connection, step_record_ids: Sequence[str], worker_id: str) -> set[str]:
    """Which of these steps this worker still holds (used to cancel work it lost)."""
    if not step_record_ids:
        return set()
    return set(
        conn.execute(
            sa.select(steps.c.id).where(
                steps.c.id.in_(step_record_ids),
                steps.c.lease_owner == worker_id,
                steps.c.status == StepStatus.RUNNING,
            )
        ).scalars()
    )


def release(
    conn: sa.Connection,
    *,
    worker_id: str,
    step_record_ids: Sequence[str],
    now: datetime,
    skip_locked: bool,
) -> list[str]:
    """Give back steps this worker holds but will not finish (it is stopping): they are
    queued again at once, without counting a recovery. Returns the ids given back."""
    if not step_record_ids:
        return []
    rows = conn.execute(
        sa.select(steps.c.id, steps.c.run_id, steps.c.attempt, steps.c.claim_token).where(
            steps.c.id.in_(step_record_ids),
            steps.c.lease_owner == worker_id,
            steps.c.status == StepStatus.RUNNING,
        )
    ).all()
    by_run: dict[str, list[Any]] = {}
    for row in rows:
        by_run.setdefault(row.run_id, []).append(row)
    released: list[str] = []
    for rtx in lock_runs(conn, by_run, now, skip_locked=skip_locked, wait=True):
        for row in by_run[rtx.run_id]:
            moved = rtx.move_steps(
                [row.id],
                StepStatus.RUNNING,
                StepStatus.QUEUED,
                values={"lease_owner": None, "lease_expires_at": None},
                data={
                    "reason": "worker_stopped",
                    "attempt": row.attempt,
                    "claimToken": row.claim_token,
                    "workerId": worker_id,
                },
                guard=sa.and_(
                    steps.c.claim_token == row.claim_token, steps.c.lease_owner == worker_id
                ),
            )
            released += [m.id for m in moved]
        rtx.close()
    return released


def report_progress(
    conn: sa.Connection,
    step: ClaimedStep,
    data: dict[str, Any],
    *,
    now: datetime,
    skip_locked: bool,
) -> bool:
    """Append an ``orchestration.step.progress`` event for a step still held under
    ``step``'s claim; False (nothing written) if the claim is no longer current."""
    rtx = lock_run(conn, step.run_id, now, skip_locked=skip_locked)
    held = rtx.note_progress(
        step.step_record_id,
        step.step_id,
        claim_token=step.claim_token,
        data={"attempt": step.attempt, **data},
    )
    rtx.close()
    return held
