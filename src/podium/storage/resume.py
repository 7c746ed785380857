"""``retry`` with ``resumeChild: true`` (issue 11): retry a failed child run in place.

The parent's failed orchestration step goes back to ``running`` (same generation and
attempt, so it still belongs to the same child) and the child's last failed step is retried
as an operator ``retry`` of the child would, in the same transaction. Locks: the parent is
held already; the child's id sorts after it, so locking the child keeps the documented
ancestor-first order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from podium.domain.events import EventType
from podium.domain.statuses import RunStatus, StepStatus
from podium.errors import Conflict, InvalidInput, Issue
from podium.storage import snapshots
from podium.storage.recovery import ActionResult, _event_data, _note
from podium.storage.runtx import RunTx
from podium.storage.tables import runs, steps


def resume_child(
    rtx: RunTx,
    target: sa.RowMapping,
    *,
    actor: str,
    note: str | None,
    retry: Callable[..., ActionResult],
) -> ActionResult:
    """Retry ``target``'s failed child in place and make ``target`` wait for it again.

    Raises :class:`InvalidInput` if ``target`` is not an orchestration step and
    :class:`Conflict` if it has no child, or its child is not ``failed`` (an aborted child
    cannot be resumed: retry without ``resumeChild`` launches a fresh one).
    """
    conn, run_id = rtx.conn, rtx.run_id
    spec = snapshots.plan_for(conn, run_id).definition.step(target["step_id"])
    if spec.type != "orchestration":
        raise InvalidInput(
            "resumeChild applies to orchestration steps only",
            [Issue("resumeChild", f"step {target['step_id']} does not launch a child run")],
        )
    runtime = (target["metadata"] or {}).get("runtime") or {}
    child_id = (runtime.get("subOrchestration") or {}).get("childRunId")
    if not child_id:
        raise Conflict(
            f"step {target['step_id']} has no child run to resume: retry it without resumeChild"
        )
    child = conn.execute(
        sa.select(runs.c.status, runs.c.parent_generation, runs.c.parent_attempt).where(
            runs.c.id == child_id
        )
    ).first()
    current = conn.execute(
        sa.select(steps.c.generation, steps.c.attempt).where(steps.c.id == target["id"])
    ).one()
    if child is None or (child.parent_generation, child.parent_attempt) != tuple(current):
        raise Conflict(
            f"step {target['step_id']} failed before its current attempt launched a child: "
            "retry it without resumeChild"
        )
    if child.status != RunStatus.FAILED:
        raise Conflict(
            f"child run {child_id} is {child.status}: only a failed child can be resumed; "
            "retry without resumeChild to launch a fresh one"
        )
    try:
        retry(
            conn,
            child_id,
            actor=actor,
            note=note or f"resumed from parent run {run_id}",
            step_record_id=None,
            delay_seconds=0.0,
            modifications=None,
            now=rtx.now,
            skip_locked=rtx.skip_locked,
        )
    except Conflict as exc:
        raise Conflict(f"child run {child_id} cannot be resumed: {exc.message}") from exc
    entry: dict[str, Any] = {
        "action": "retry",
        "actor": actor,
        "note": note,
        "at": rtx.now.isoformat(),
        "generation": int(target["generation"]),
        "resumeChild": True,
        "childRunId": child_id,
    }
    rtx.move_steps(
        [target["id"]],
        StepStatus.FAILED,
        StepStatus.RUNNING,
        values={
            "error": None,
            "ended_at": None,
            "available_at": None,
            "lease_owner": None,
            "lease_expires_at": None,
            "metadata": _note(target["metadata"] or {}, entry),
        },
        event=EventType.RECOVERY_ACTION,
        data={**_event_data(entry), "status": str(StepStatus.RUNNING)},
    )
    others_failed = conn.execute(
        sa.select(sa.func.count()).where(
            steps.c.run_id == run_id, steps.c.status == StepStatus.FAILED
        )
    ).scalar_one()
    if not others_failed:
        rtx.move_run(RunStatus.RUNNING, {"reason": "retry", "actor": actor}, error=None)
        rtx.start_recovery(
            {
                "action": "retry",
                "actor": actor,
                "stepId": target["step_id"],
                "stepRecordId": target["id"],
                "at": rtx.now.isoformat(),
            }
        )
    rtx.close()
    return ActionResult(
        "retry", run_id, str(rtx.status), target["id"], target["step_id"], int(target["generation"])
    )
