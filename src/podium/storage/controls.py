"""Engine-level controls on a whole run: abort."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from podium.domain.statuses import RunStatus, StepStatus
from podium.storage import approvals
from podium.storage.recovery import check_actionable
from podium.storage.runtx import lock_run
from podium.storage.tables import steps

ABORTABLE_STEPS = (
    StepStatus.PENDING,
    StepStatus.QUEUED,
    StepStatus.RUNNING,
    StepStatus.CHECKPOINT_PENDING,
)


def abort_run(
    conn: sa.Connection,
    run_id: str,
    *,
    actor: str,
    reason: str | None,
    now: datetime,
    skip_locked: bool,
    force: bool = True,
) -> list[str]:
    """Abort a run: stop new work, mark unfinished steps aborted, expire pending approvals.

    Returns the step record ids that were running, so their workers can be told to cancel
    (they also find out on their next heartbeat). Raises :class:`Conflict` if the run is
    already completed or aborted, or (unless ``force``) while an operator action is in
    flight on it.
    """
    rtx = lock_run(conn, run_id, now, skip_locked=skip_locked)
    check_actionable(rtx, "abort", force=force)
    rows = conn.execute(
        sa.select(steps.c.id, steps.c.status)
        .where(steps.c.run_id == run_id, steps.c.status.in_([str(s) for s in ABORTABLE_STEPS]))
        .order_by(steps.c.position)
    ).all()
    running = [r.id for r in rows if r.status == StepStatus.RUNNING]
    aborted = rtx.move_steps(
        [r.id for r in rows],
        ABORTABLE_STEPS,
        StepStatus.ABORTED,
        values={"ended_at": now, "lease_owner": None, "lease_expires_at": None},
    )
    # pending approvals expire with the reason, each with orchestration.checkpoint.resolved
    approvals.expire_for_abort(rtx, actor=actor, reason=reason)
    rtx.move_run(
        RunStatus.ABORTED,
        {"actor": actor, "reason": reason, "abortedSteps": [m.step_id for m in aborted]},
    )
    rtx.close()
    return running
