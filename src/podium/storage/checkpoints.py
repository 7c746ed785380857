"""Human checkpoints on steps (spec section 5): holding a step for a decision, and applying
the decision (a person's, or ``onTimeout`` at expiry).

Holding happens in the transaction that settles the step's attempt (group commit): the
attempt's output is recorded and the step becomes ``checkpoint_pending`` with its approval,
or the attempt is fenced out and nothing changes. A decision locks the run, compares-and-sets
the approval, and moves the step in the same transaction:

* ``continue``: ``completed`` (the recorded output stands; the agent is not called again),
  dependents released;
* ``retry``: ``pending`` with a new generation, due now, with validated ``modifications``;
* ``respond`` (kind ``input``): ``pending`` due now, same generation and attempt, with the
  answer in ``metadata.runtime.a2a.answer`` for the A2A agent to send on the same task;
* ``abort``: the run is aborted (its other approvals expire);
* ``fail`` (``onTimeout`` only): ``failed`` with ``checkpoint_expired``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from podium.domain.events import EventType
from podium.domain.outcomes import ErrorCode, StepError
from podium.domain.statuses import ApprovalStatus, RunStatus, StepStatus
from podium.domain.templating import TemplateContext, find_references, resolve
from podium.errors import Conflict, InputResolutionError, InvalidInput, Issue
from podium.storage import approvals, snapshots, statements
from podium.storage.approvals import ApprovalRecord
from podium.storage.records import ClaimedStep

if TYPE_CHECKING:
    from podium.domain.definition import CheckpointSpec
from podium.storage.runtx import RunTx
from podium.storage.tables import steps

INPUT_CODES = frozenset({str(ErrorCode.AGENT_INPUT_REQUIRED), str(ErrorCode.AGENT_AUTH_REQUIRED)})
TIMEOUT_ACTOR = "podium:timeout"
# the drill hook of the decision crash drill: a test process sets PODIUM_FAULT to this to be
# killed right after a decision committed, before anything resumes (unset in deployments)
FAULT_AFTER_DECISION = "after_decision_committed"


@dataclass(frozen=True)
class Decided:
    """What a decision did: the approval after it, and the run's status."""

    approval: ApprovalRecord
    run_status: str
    step_status: str | None


# -- holding a step -----------------------------------------------------------------------


def answer_message_id(approval_id: str) -> str:
    """The A2A ``messageId`` of the answer to approval ``approval_id``: the same on every
    send, so that a re-attaching worker can tell whether the agent already has it."""
    return f"podium-answer-{approval_id}"


def render_question(rtx: RunTx, step: ClaimedStep, spec: CheckpointSpec, output: Any) -> str:
    """The checkpoint's question with its placeholders resolved (the step's own output
    included); a placeholder without a value leaves the question as written, with a note."""
    names = {ref.name for _, ref in find_references(spec.question) if ref.kind == "steps"}
    outputs: dict[str, Any] = {}
    others = sorted(names - {step.step_id})
    if others:
        outputs = dict(
            rtx.conn.execute(
                statements.UPSTREAM_OUTPUTS, {"rid": rtx.run_id, "names": others}
            ).all()
        )
    outputs[step.step_id] = output
    context = TemplateContext(
        parameters=step.parameters,
        steps=outputs,
        run={"id": step.run_id, "organizationSlug": step.organization_slug},
    )
    try:
        value = resolve(spec.question, context, path="checkpoint_after.question")
    except InputResolutionError as exc:
        return f"{spec.question} ({exc.message})"
    return value if isinstance(value, str) else json.dumps(value, default=str)


def hold_for_checkpoint(
    rtx: RunTx,
    step: ClaimedStep,
    spec: CheckpointSpec,
    *,
    output: Any,
    resolved_input: Any,
    attempt_data: dict[str, Any],
) -> bool:
    """Record a finished attempt's output and hold the step for a human decision (one
    transaction). False if the claim is no longer current (nothing written)."""
    moved = rtx.move_steps(
        [step.step_record_id],
        StepStatus.RUNNING,
        StepStatus.CHECKPOINT_PENDING,
        values={
            "output": output,
            "input": resolved_input,
            "error": None,
            "lease_owner": None,
            "lease_expires_at": None,
        },
        data={**attempt_data, "output": output},
        guard=steps.c.claim_token == step.claim_token,
    )
    if not moved:
        return False
    approvals.request(
        rtx,
        step_record_id=step.step_record_id,
        step_id=step.step_id,
        kind=approvals.KIND_CHECKPOINT,
        question=render_question(rtx, step, spec, output),
        options=list(spec.options),
        on_timeout=spec.onTimeout,
        timeout_seconds=spec.timeoutSeconds,
        conversation_id=step.idempotency_key,
        step_output=output,
    )
    return True


def asks_for_input(error: StepError | None) -> bool:
    """Whether a failed attempt is an A2A task waiting for input or authorization."""
    if error is None or error.code not in INPUT_CODES:
        return False
    a2a = error.details.get("a2a") or {}
    return bool(a2a.get("taskId"))


def hold_for_input(
    rtx: RunTx,
    step: ClaimedStep,
    error: StepError,
    *,
    resolved_input: Any,
    attempt_data: dict[str, Any],
) -> bool:
    """Hold a step whose A2A task asked for input (or authorization) for a person's answer:
    an approval of kind ``input`` with options ``respond`` and ``abort``."""
    a2a = dict(error.details.get("a2a") or {})
    moved = rtx.move_steps(
        [step.step_record_id],
        StepStatus.RUNNING,
        StepStatus.CHECKPOINT_PENDING,
        values={
            "input": resolved_input,
            "error": None,
            "lease_owner": None,
            "lease_expires_at": None,
        },
        data={**attempt_data, "a2a": a2a, "reason": error.code},
        guard=steps.c.claim_token == step.claim_token,
    )
    if not moved:
        return False
    said = error.details.get("agentMessage")
    state = a2a.get("state") or "INPUT_REQUIRED"
    question = said or (
        "The agent needs authorization" if state == "AUTH_REQUIRED" else "The agent needs input"
    )
    approvals.request(
        rtx,
        step_record_id=step.step_record_id,
        step_id=step.step_id,
        kind=approvals.KIND_INPUT,
        question=question,
        options=list(approvals.INPUT_OPTIONS),
        on_timeout="abort",
        timeout_seconds=None,
        conversation_id=str(a2a.get("contextId") or step.idempotency_key),
        details={"a2a": a2a, "agentMessage": said, "state": state},
    )
    return True


# -- deciding -----------------------------------------------------------------------------


def already_decided(approval: ApprovalRecord) -> Conflict:
    """The 409 for an approval that is no longer pending, naming the decision taken."""
    who = approval.decided_by or "someone"
    when = approval.decided_at.isoformat() if approval.decided_at else "earlier"
    return Conflict(
        f"approval {approval.id} is already {approval.status}: "
        f"{approval.decision or approval.status} by {who} at {when}",
        details={
            "approvalId": approval.id,
            "approvalStatus": approval.status,
            "decision": approval.decision,
            "decidedBy": approval.decided_by,
            "decidedAt": when,
        },
    )


def check_decision(
    approval: ApprovalRecord,
    decision: str,
    *,
    modifications: dict[str, Any] | None,
    response: dict[str, Any] | None,
    step_ids: list[str],
) -> dict[str, Any]:
    """Validate a decision before anything changes (422 naming each problem); returns the
    step's overrides for a retry."""
    issues: list[Issue] = []
    allowed = approval.options if approval.kind == approvals.KIND_CHECKPOINT else ["respond"]
    allowed = [*allowed, "abort"] if "abort" not in allowed else allowed
    if decision not in allowed:
        issues.append(
            Issue("decision", f"{decision!r} is not an option here: one of {', '.join(allowed)}")
        )
    if modifications and decision != "retry":
        issues.append(Issue("modifications", "apply only to the retry decision"))
    if response is not None and decision != "respond":
        issues.append(Issue("response", "applies only to the respond decision"))
    if decision == "respond" and not (
        response and (response.get("text") or response.get("data") is not None)
    ):
        issues.append(Issue("response", "respond needs a response text or data"))
    overrides: dict[str, Any] = {}
    if decision == "retry" and modifications:
        from podium.storage.recovery import _overrides  # one validation for both retries

        try:
            overrides = _overrides(modifications, approval.step_id or "", step_ids)
        except InvalidInput as exc:
            issues += exc.issues
    if issues:
        raise InvalidInput(f"invalid decision on approval {approval.id}", issues)
    return overrides


def apply(
    rtx: RunTx,
    approval: ApprovalRecord,
    decision: str,
    *,
    actor: str,
    note: str | None,
    modifications: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
    response: dict[str, Any] | None = None,
    expired: bool = False,
) -> bool:
    """Compare-and-set the approval and move its step (module docstring). False if another
    decision won (nothing changed). The caller closes ``rtx`` unless the run was aborted
    (then it is closed here, before the abort's own transaction handle)."""
    status = ApprovalStatus.EXPIRED if expired else approvals.STATUS_FOR_DECISION[decision]
    if not approvals.mark_decided(
        rtx,
        approval,
        decision=decision,
        status=status,
        actor=actor,
        note=note,
        modifications=modifications,
        response=response,
    ):
        return False
    event = {"approvalId": approval.id, "decision": decision, "actor": actor}
    sid = approval.step_record_id
    if decision == "continue":
        moved = rtx.move_steps(
            [sid],
            StepStatus.CHECKPOINT_PENDING,
            StepStatus.COMPLETED,
            values={"ended_at": rtx.now},
            data={**event, "output": approval.step_output},
        )
        if moved:
            plan = snapshots.plan_for(rtx.conn, rtx.run_id)
            rtx.release_dependents([moved[0].step_id], plan.dependents)
        rtx.settle()
    elif decision in ("retry", "respond"):
        _run_again(rtx, approval, decision, event, overrides or {}, response)
    elif decision == "fail":
        error = StepError(
            str(ErrorCode.CHECKPOINT_EXPIRED),
            f"checkpoint {approval.id} expired without a decision",
            False,
            {"approvalId": approval.id},
        ).to_dict()
        rtx.move_steps(
            [sid],
            StepStatus.CHECKPOINT_PENDING,
            StepStatus.FAILED,
            values={"ended_at": rtx.now, "error": error},
            data={**event, "error": error},
        )
        rtx.settle(error={"stepId": approval.step_id, **error})
    return True


def _run_again(
    rtx: RunTx,
    approval: ApprovalRecord,
    decision: str,
    event: dict[str, Any],
    overrides: dict[str, Any],
    response: dict[str, Any] | None,
) -> None:
    row = rtx.conn.execute(
        sa.select(steps.c.generation, steps.c.metadata).where(steps.c.id == approval.step_record_id)
    ).one()
    metadata = dict(row.metadata or {})
    runtime = dict(metadata.get("runtime") or {})
    runtime.pop("retry", None)
    values: dict[str, Any] = {"available_at": rtx.now, "ended_at": None, "error": None}
    generation = int(row.generation)
    if decision == "retry":
        generation += 1
        values.update(generation=generation, attempt=1, recoveries=0)
        runtime.pop("a2a", None)
        if overrides:
            runtime["overrides"] = {"generation": generation, **overrides}
        else:
            runtime.pop("overrides", None)
    else:
        a2a = dict(runtime.get("a2a") or {})
        a2a["answer"] = {
            "approvalId": approval.id,
            "messageId": answer_message_id(approval.id),
            **(response or {}),
        }
        runtime["a2a"] = a2a
    metadata["runtime"] = runtime
    values["metadata"] = metadata
    rtx.move_steps(
        [approval.step_record_id],
        StepStatus.CHECKPOINT_PENDING,
        StepStatus.PENDING,
        values=values,
        data={**event, "reason": f"checkpoint_{decision}", "generation": generation},
        event=EventType.STEP_RETRY_SCHEDULED,
    )
    rtx.settle()


def _step_status(rtx: RunTx, step_record_id: str) -> str | None:
    return rtx.conn.execute(
        sa.select(steps.c.status).where(steps.c.id == step_record_id)
    ).scalar_one_or_none()


def _finish(
    rtx: RunTx, approval: ApprovalRecord, decision: str, *, actor: str, note: str | None
) -> Decided:
    """Close the run's transaction handle (aborting the run for ``abort``) and report."""
    rtx.close()
    run_status = str(rtx.status)
    if decision == "abort":
        from podium.storage import controls  # controls expires approvals: imports this layer

        reason = note or f"approval {approval.id}: abort"
        controls.abort_run(
            rtx.conn,
            rtx.run_id,
            actor=actor,
            reason=reason,
            now=rtx.now,
            skip_locked=rtx.skip_locked,
            force=True,
        )
        run_status = str(RunStatus.ABORTED)
    after = approvals.get(rtx.conn, approval.id)
    return Decided(after, run_status, _step_status(rtx, approval.step_record_id))


def decide(
    conn: sa.Connection,
    approval_id: str,
    *,
    organization: str | None,
    decision: str,
    actor: str,
    note: str | None,
    modifications: dict[str, Any] | None,
    response: dict[str, Any] | None,
    now: datetime,
    skip_locked: bool,
) -> Decided:
    """A person's decision on a pending approval (one transaction). Raises
    :class:`NotFound` (also for another organization's approval), :class:`InvalidInput`
    for a decision, modifications or response that do not fit (nothing changes), and
    :class:`Conflict` naming the decision already taken if the approval is not pending."""
    from podium.storage.runtx import lock_run

    found = approvals.get(conn, approval_id, organization)
    rtx = lock_run(conn, found.run_id, now, skip_locked=skip_locked)
    approval = approvals.get(conn, approval_id)  # as committed before the lock
    if approval.status != ApprovalStatus.PENDING:
        raise already_decided(approval)
    definition = snapshots.plan_for(conn, approval.run_id).definition
    overrides = check_decision(
        approval,
        decision,
        modifications=modifications,
        response=response,
        step_ids=definition.step_ids,
    )
    if not apply(
        rtx,
        approval,
        decision,
        actor=actor,
        note=note,
        modifications=modifications or None,
        overrides=overrides,
        response=response,
    ):
        raise already_decided(approvals.get(conn, approval_id))
    return _finish(rtx, approval, decision, actor=actor, note=note)


def expire_one(
    conn: sa.Connection, approval_id: str, run_id: str, *, now: datetime, skip_locked: bool
) -> Decided | None:
    """Apply ``onTimeout`` to one approval past its expiry, unless a decision won first."""
    from podium.storage.runtx import lock_run

    rtx = lock_run(conn, run_id, now, skip_locked=skip_locked)
    approval = approvals.get(conn, approval_id)
    if approval.status != ApprovalStatus.PENDING or approval.expires_at is None:
        rtx.close()
        return None
    if approval.expires_at > now:
        rtx.close()
        return None
    decision = approval.on_timeout
    note = f"expired at {approval.expires_at.isoformat()} (onTimeout: {decision})"
    if not apply(rtx, approval, decision, actor=TIMEOUT_ACTOR, note=note, expired=True):
        rtx.close()
        return None
    return _finish(rtx, approval, decision, actor=TIMEOUT_ACTOR, note=note)
