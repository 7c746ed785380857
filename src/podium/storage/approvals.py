"""Human approvals (spec section 5): every SQL statement on ``human_approvals``.

* :func:`hold_for_checkpoint` and :func:`hold_for_input` run inside the transaction that
  settles a step's attempt: the step becomes ``checkpoint_pending`` (fenced by its claim
  token) and its approval row is created, with ``orchestration.step.checkpoint_pending`` and
  ``orchestration.checkpoint.requested``, all in one commit.
* :func:`decide` applies a human decision; :func:`expire_due` applies ``onTimeout`` to
  approvals past ``expiresAt``. Both lock the run first and then change the approval with a
  compare-and-set (``WHERE status = 'pending'``): of concurrent deciders (people, expiry)
  exactly one wins, and the others see the decision already taken (target A2).
* :func:`expire_for_abort` expires a run's pending approvals when the run is aborted.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from podium.domain.events import EventType
from podium.domain.ids import new_id
from podium.domain.statuses import ApprovalStatus
from podium.errors import NotFound
from podium.storage.runtx import RunTx
from podium.storage.tables import approvals, runs

KIND_CHECKPOINT = "checkpoint"
KIND_INPUT = "input"
INPUT_OPTIONS = ["respond", "abort"]

# 80 % of the time to expiry: the moment orchestration.checkpoint.expiring goes out
EXPIRING_FRACTION = 0.8

# the approval status each decision leaves behind
STATUS_FOR_DECISION = {
    "continue": ApprovalStatus.APPROVED,
    "retry": ApprovalStatus.APPROVED,
    "respond": ApprovalStatus.APPROVED,
    "abort": ApprovalStatus.REJECTED,
}


@dataclass(frozen=True)
class ApprovalRecord:
    id: str
    organization_slug: str
    run_id: str
    step_record_id: str
    step_id: str | None
    definition_name: str | None
    conversation_id: str
    kind: str
    question: str
    options: list[str]
    status: str
    decision: str | None
    decided_by: str | None
    decided_at: datetime | None
    note: str | None
    on_timeout: str
    expires_at: datetime | None
    expiring_at: datetime | None
    expiring_notified: bool
    created_at: datetime
    step_output: Any
    details: dict[str, Any] | None
    modifications: dict[str, Any] | None
    response: dict[str, Any] | None


_FIELDS = [f.name for f in fields(ApprovalRecord)]


def _record(row: sa.RowMapping) -> ApprovalRecord:
    return ApprovalRecord(**{name: row[name] for name in _FIELDS})


# -- creation -----------------------------------------------------------------------------


def request(
    rtx: RunTx,
    *,
    step_record_id: str,
    step_id: str,
    kind: str,
    question: str,
    options: list[str],
    on_timeout: str,
    timeout_seconds: float | None,
    conversation_id: str,
    step_output: Any = None,
    details: dict[str, Any] | None = None,
) -> str:
    """Create a pending approval for a step that just became ``checkpoint_pending`` and emit
    ``orchestration.checkpoint.requested``; returns the ``approvalId``."""
    approval_id = new_id()
    expires_at = expiring_at = None
    if timeout_seconds is not None:
        expires_at = rtx.now + timedelta(seconds=timeout_seconds)
        expiring_at = rtx.now + timedelta(seconds=timeout_seconds * EXPIRING_FRACTION)
    definition_name = rtx.conn.execute(
        sa.select(runs.c.definition_name).where(runs.c.id == rtx.run_id)
    ).scalar_one()
    rtx.conn.execute(
        approvals.insert().values(
            id=approval_id,
            organization_slug=rtx.organization_slug,
            run_id=rtx.run_id,
            step_record_id=step_record_id,
            step_id=step_id,
            definition_name=definition_name,
            conversation_id=conversation_id,
            kind=kind,
            question=question,
            options=options,
            status=str(ApprovalStatus.PENDING),
            on_timeout=on_timeout,
            expires_at=expires_at,
            expiring_at=expiring_at,
            expiring_notified=False,
            created_at=rtx.now,
            step_output=step_output,
            details=details,
        )
    )
    rtx.emit(
        EventType.CHECKPOINT_REQUESTED,
        {
            "approvalId": approval_id,
            "kind": kind,
            "question": question,
            "options": options,
            "onTimeout": on_timeout,
            "expiresAt": expires_at.isoformat() if expires_at else None,
            "conversationId": conversation_id,
        },
        step_id=step_id,
        step_record_id=step_record_id,
    )
    return approval_id


# -- reading ------------------------------------------------------------------------------


def get(conn: sa.Connection, approval_id: str, organization: str | None = None) -> ApprovalRecord:
    """One approval; another organization's answers :class:`NotFound` like a missing one."""
    query = sa.select(approvals).where(approvals.c.id == approval_id)
    if organization is not None:
        query = query.where(approvals.c.organization_slug == organization)
    row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"approval {approval_id} not found")
    return _record(row)


def list_approvals(
    conn: sa.Connection,
    organization: str | None,
    *,
    statuses: list[str] | None = None,
    run_id: str | None = None,
    definition: str | None = None,
    kind: str | None = None,
    before_id: str | None = None,
    limit: int = 50,
) -> list[ApprovalRecord]:
    """Approvals newest first (``created_at``, then id), after the cursor ``before_id``."""
    query = sa.select(approvals)
    if organization is not None:
        query = query.where(approvals.c.organization_slug == organization)
    if statuses:
        query = query.where(
            approvals.c.status == statuses[0]
            if len(statuses) == 1
            else approvals.c.status.in_(statuses)
        )
    if run_id is not None:
        query = query.where(approvals.c.run_id == run_id)
    if definition is not None:
        query = query.where(approvals.c.definition_name == definition)
    if kind is not None:
        query = query.where(approvals.c.kind == kind)
    if before_id is not None:
        cursor = conn.execute(
            sa.select(approvals.c.created_at).where(approvals.c.id == before_id)
        ).first()
        if cursor is not None:
            query = query.where(
                sa.or_(
                    approvals.c.created_at < cursor.created_at,
                    sa.and_(
                        approvals.c.created_at == cursor.created_at, approvals.c.id < before_id
                    ),
                )
            )
    query = query.order_by(approvals.c.created_at.desc(), approvals.c.id.desc()).limit(limit)
    return [_record(r) for r in conn.execute(query).mappings()]


def pending_of_run(conn: sa.Connection, run_id: str) -> list[ApprovalRecord]:
    rows = conn.execute(
        sa.select(approvals)
        .where(approvals.c.run_id == run_id, approvals.c.status == ApprovalStatus.PENDING)
        .order_by(approvals.c.created_at, approvals.c.id)
    ).mappings()
    return [_record(r) for r in rows]


def locked(rtx: RunTx, approval_id: str) -> ApprovalRecord:
    """The approval as the run's lock holder sees it (what committed before the lock)."""
    return get(rtx.conn, approval_id)


# -- deciding -----------------------------------------------------------------------------


def mark_decided(
    rtx: RunTx,
    approval: ApprovalRecord,
    *,
    decision: str,
    status: ApprovalStatus,
    actor: str,
    note: str | None,
    modifications: dict[str, Any] | None = None,
    response: dict[str, Any] | None = None,
) -> bool:
    """Compare-and-set the approval from pending to ``status``, recording who, when, why
    and what; emit ``orchestration.checkpoint.resolved``. False if it was no longer
    pending (another decision won)."""
    done = rtx.conn.execute(
        approvals.update()
        .where(approvals.c.id == approval.id, approvals.c.status == ApprovalStatus.PENDING)
        .values(
            status=str(status),
            decision=decision,
            decided_by=actor,
            decided_at=rtx.now,
            note=note,
            modifications=modifications,
            response=response,
        )
    )
    if done.rowcount != 1:
        return False
    data: dict[str, Any] = {
        "approvalId": approval.id,
        "kind": approval.kind,
        "decision": decision,
        "status": str(status),
        "actor": actor,
    }
    if note is not None:
        data["note"] = note
    if modifications:
        data["modifications"] = modifications
    if response is not None:
        data["response"] = response
    rtx.emit(
        EventType.CHECKPOINT_RESOLVED,
        data,
        step_id=approval.step_id,
        step_record_id=approval.step_record_id,
    )
    return True


def expire_for_abort(rtx: RunTx, *, actor: str, reason: str | None) -> list[str]:
    """Expire the run's pending approvals because the run is being aborted (with the
    reason); returns their ids."""
    pending = pending_of_run(rtx.conn, rtx.run_id)
    expired = []
    for approval in pending:
        if mark_decided(
            rtx,
            approval,
            decision="abort",
            status=ApprovalStatus.EXPIRED,
            actor=actor,
            note=f"run aborted: {reason}" if reason else "run aborted",
        ):
            expired.append(approval.id)
    return expired


def due(conn: sa.Connection, now: datetime, limit: int) -> list[tuple[str, str]]:
    """``(approvalId, runId)`` of pending approvals past ``expiresAt``, oldest first."""
    rows = conn.execute(
        sa.select(approvals.c.id, approvals.c.run_id)
        .where(approvals.c.status == ApprovalStatus.PENDING, approvals.c.expires_at <= now)
        .order_by(approvals.c.expires_at)
        .limit(limit)
    ).all()
    return [(r.id, r.run_id) for r in rows]


def expiring(conn: sa.Connection, now: datetime, limit: int) -> list[tuple[str, str]]:
    """``(approvalId, runId)`` of pending approvals past their 80 % mark, not yet warned."""
    rows = conn.execute(
        sa.select(approvals.c.id, approvals.c.run_id)
        .where(
            approvals.c.status == ApprovalStatus.PENDING,
            approvals.c.expiring_notified == sa.false(),
            approvals.c.expiring_at <= now,
        )
        .order_by(approvals.c.expiring_at)
        .limit(limit)
    ).all()
    return [(r.id, r.run_id) for r in rows]


def warn_expiring(rtx: RunTx, approval_id: str) -> bool:
    """Emit ``orchestration.checkpoint.expiring`` once for a still-pending approval."""
    done = rtx.conn.execute(
        approvals.update()
        .where(
            approvals.c.id == approval_id,
            approvals.c.status == ApprovalStatus.PENDING,
            approvals.c.expiring_notified == sa.false(),
        )
        .values(expiring_notified=True)
    )
    if done.rowcount != 1:
        return False
    approval = get(rtx.conn, approval_id)
    rtx.emit(
        EventType.CHECKPOINT_EXPIRING,
        {
            "approvalId": approval.id,
            "kind": approval.kind,
            "expiresAt": approval.expires_at.isoformat() if approval.expires_at else None,
            "onTimeout": approval.on_timeout,
        },
        step_id=approval.step_id,
        step_record_id=approval.step_record_id,
    )
    return True
