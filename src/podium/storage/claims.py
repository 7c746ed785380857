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

from podium.domain.events import EventType
from podium.domain.outcomes import ErrorCode, StepError
from podium.domain.statuses import RunStatus, StepStatus, check_step_transition
from podium.storage import snapshots, statements
from podium.storage.records import ClaimedStep
from podium.storage.runtx import RunTx, lock_runs
from podium.storage.tables import runs, steps, workers


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
    check_step_transition(StepStatus.QUEUED, StepStatus.RUNNING)
    rows = rtx.conn.execute(
        statements.CLAIM_IN_RUN[rtx.conn.dialect.name],
        {
            "rid": rtx.run_id,
            "want": limit,
            "maxp": rtx.max_parallel_steps,
            "worker": worker_id,
            "expires": rtx.now + timedelta(seconds=lease_seconds),
            "now": rtx.now,
        },
    ).all()
    if not rows:
        return []
    rows = sorted(rows, key=lambda r: r.position)
    if rtx.recovery_in_flight is not None and rtx.recovery_in_flight.get("action") == "skip":
        rtx.clear_recovery()  # the engine took up what the skip released
    for r in rows:
        rtx.emit(
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
    rows = conn.execute(
        steps.update()
        .where(
            steps.c.id.in_(step_record_ids),
            steps.c.lease_owner == worker_id,
            steps.c.status == StepStatus.RUNNING,
        )
        .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
        .returning(steps.c.id)
    ).all()
    return {r.id for r in rows}


def reclaim_expired(
    conn: sa.Connection, *, now: datetime, max_recoveries: int, skip_locked: bool
) -> list[tuple[str, str]]:
    """Take back steps whose lease expired (their worker died or hung).

    A step is queued again, up to ``max_recoveries`` times; after that it fails with
    ``worker_lost``. Returns ``(step_record_id, "requeued" | "failed")`` pairs.
    """
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
            steps.c.started_at,
        )
        .where(steps.c.status == StepStatus.RUNNING, steps.c.lease_expires_at < now)
        .limit(500)
    ).all()
    by_run: dict[str, list[Any]] = {}
    for row in expired:
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
