"""Engine-level controls on a whole run: abort."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from podium.domain.statuses import RunStatus, StepStatus
from podium.storage import approvals, cascade
from podium.storage.recovery import check_actionable
from podium.storage.runtx import RunTx, close_all
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
    """Abort a run: stop new work, mark unfinished steps aborted, expire pending approvals;
    and the same, in this transaction, for every active descendant (child runs and theirs).

    Returns the step record ids that were running, so their workers can be told to cancel
    (they also find out on their next heartbeat). Raises :class:`Conflict` if the run is
    already completed or aborted, or (unless ``force``) while an operator action is in
    flight on it.
    """
    # issue 11: the tree's root, the run and its descendants, locked in the documented
    # order (docs/architecture.md, "Parent and child runs")
    tree = cascade.lock_tree(conn, run_id, now, skip_locked=skip_locked)
    check_actionable(tree.run, "abort", force=force)
    running = _abort_one(tree.run, actor=actor, reason=reason)
    for rtx in tree.descendants:
        if rtx.status in cascade.ACTIVE:
            running += _abort_one(
                rtx, actor=actor, reason=f"parent run {run_id} was aborted", cascade_from=run_id
            )
    close_all(tree.all)
    return running


def _abort_one(
    rtx: RunTx, *, actor: str, reason: str | None, cascade_from: str | None = None
) -> list[str]:
    """Abort one locked run; returns the ids of its steps that were running."""
    conn, now, run_id = rtx.conn, rtx.now, rtx.run_id
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
    data = {"actor": actor, "reason": reason, "abortedSteps": [m.step_id for m in aborted]}
    if cascade_from is not None:
        data["cascadeFrom"] = cascade_from
    rtx.move_run(RunStatus.ABORTED, data)
    return running
