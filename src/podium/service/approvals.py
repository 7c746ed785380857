"""Human approvals (spec section 5): the inbox and decisions, shared by the API and the CLI.

Every function is scoped to the actor's organization: another organization's approval is
not found. Deciding needs the ``operator`` role and records the actor's name as the one who
decided.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from podium.errors import InvalidInput, Issue
from podium.service.actors import Actor
from podium.service.views import Page, View
from podium.storage.approvals import ApprovalRecord
from podium.storage.checkpoints import Decided
from podium.storage.store import SqlStore

MAX_PAGE = 200
STATUSES = ("pending", "approved", "rejected", "expired")
KINDS = ("checkpoint", "input")
DECISIONS = ("continue", "retry", "abort", "respond")
MAX_NOTE = 4000
MAX_RESPONSE_TEXT = 64_000

DecisionName = Literal["continue", "retry", "abort", "respond"]


class ApprovalView(View):
    """An approval as the inbox, the run detail and the CLI show it."""

    approvalId: str
    organizationSlug: str
    runId: str
    stepRecordId: str
    stepId: str | None = None
    definition: str | None = None
    conversationId: str
    kind: str
    question: str
    options: list[str]
    status: str
    decision: str | None = None
    decidedBy: str | None = None
    decidedAt: datetime | None = None
    note: str | None = None
    onTimeout: str
    expiresAt: datetime | None = None
    createdAt: datetime
    stepOutput: Any = None
    details: dict[str, Any] | None = None
    modifications: dict[str, Any] | None = None
    response: dict[str, Any] | None = None

    @classmethod
    def of(cls, a: ApprovalRecord) -> ApprovalView:
        return cls(
            approvalId=a.id,
            organizationSlug=a.organization_slug,
            runId=a.run_id,
            stepRecordId=a.step_record_id,
            stepId=a.step_id,
            definition=a.definition_name,
            conversationId=a.conversation_id,
            kind=a.kind,
            question=a.question,
            options=a.options,
            status=a.status,
            decision=a.decision,
            decidedBy=a.decided_by,
            decidedAt=a.decided_at,
            note=a.note,
            onTimeout=a.on_timeout,
            expiresAt=a.expires_at,
            createdAt=a.created_at,
            stepOutput=a.step_output,
            details=a.details,
            modifications=a.modifications,
            response=a.response,
        )


class DecisionView(View):
    """What a decision did: the approval as decided, and the run's and step's status."""

    approval: ApprovalView
    runStatus: str
    stepStatus: str | None = None

    @classmethod
    def of(cls, decided: Decided) -> DecisionView:
        return cls(
            approval=ApprovalView.of(decided.approval),
            runStatus=decided.run_status,
            stepStatus=decided.step_status,
        )


def list_approvals(
    store: SqlStore,
    actor: Actor,
    *,
    status: list[str] | None = None,
    run_id: str | None = None,
    definition: str | None = None,
    kind: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[ApprovalView]:
    """The organization's approvals newest first, ``pending`` ones unless ``status`` says
    otherwise (``all`` for every status); pass ``nextCursor`` back as ``cursor``."""
    statuses = list(status or ["pending"])
    issues = [
        Issue("status", f"must be one of {', '.join(STATUSES)} or all, not {s!r}")
        for s in statuses
        if s not in (*STATUSES, "all")
    ]
    if kind is not None and kind not in KINDS:
        issues.append(Issue("kind", f"must be one of {', '.join(KINDS)}, not {kind!r}"))
    if not 1 <= limit <= MAX_PAGE:
        issues.append(Issue("limit", f"must be between 1 and {MAX_PAGE}"))
    if issues:
        raise InvalidInput("invalid filter", issues)
    if "all" in statuses:
        statuses = []
    if run_id is not None:
        run_id = store.find_run_id(run_id, actor.organization)
    found = store.list_approvals(
        actor.organization,
        statuses=statuses,
        run_id=run_id,
        definition=definition,
        kind=kind,
        before_id=cursor,
        limit=limit + 1,
    )
    items = [ApprovalView.of(a) for a in found[:limit]]
    more = len(found) > limit
    return Page[ApprovalView](items=items, nextCursor=items[-1].approvalId if more else None)


def show(store: SqlStore, actor: Actor, approval_id: str) -> ApprovalView:
    return ApprovalView.of(store.get_approval(approval_id, actor.organization))


def pending_of_run(store: SqlStore, run_id: str) -> list[dict[str, Any]]:
    """A run's pending approvals, as the run detail and ``/status`` list them."""
    return [ApprovalView.of(a).model_dump(mode="json") for a in store.pending_approvals(run_id)]


def _check(
    decision: str, note: str | None, response: dict[str, Any] | None
) -> dict[str, Any] | None:
    issues = []
    if decision not in DECISIONS:
        issues.append(Issue("decision", f"must be one of {', '.join(DECISIONS)}"))
    if note is not None and len(note) > MAX_NOTE:
        issues.append(Issue("note", f"at most {MAX_NOTE} characters"))
    if response is not None:
        unknown = sorted(set(response) - {"text", "data"})
        issues += [Issue(f"response.{k}", "unknown member") for k in unknown]
        text = response.get("text")
        if text is not None and (not isinstance(text, str) or len(text) > MAX_RESPONSE_TEXT):
            issues.append(Issue("response.text", f"a string of at most {MAX_RESPONSE_TEXT}"))
        response = {k: v for k, v in response.items() if v is not None}
    if issues:
        raise InvalidInput("invalid decision", issues)
    return response


def decide(
    store: SqlStore,
    actor: Actor,
    approval_id: str,
    *,
    decision: str,
    note: str | None = None,
    modifications: dict[str, Any] | None = None,
    response: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> tuple[DecisionView, bool]:
    """Decide a pending approval (``continue``, ``retry`` with ``modifications``, ``abort``,
    or ``respond`` with ``response`` ``{text?, data?}`` for kind ``input``). With
    ``idempotency_key`` a repeat of the request replays the first answer. Returns the
    outcome and whether it was replayed. 409 when the approval is no longer pending."""
    actor.require("operator", "decide approvals")
    response = _check(decision, note, response)
    fields: dict[str, Any] = {
        "decision": decision,
        "actor": actor.name,
        "note": note,
        "modifications": modifications,
        "response": response,
    }
    if idempotency_key is None:
        decided = store.decide_approval(approval_id, organization=actor.organization, **fields)
        return DecisionView.of(decided), False
    from podium.service.runs import request_hash  # runs lists approvals: import late

    body = {k: v for k, v in fields.items() if k != "actor"}
    digest = request_hash(body)
    found, created = store.decide_approval_idempotent(
        approval_id,
        organization=actor.organization,
        key=idempotency_key,
        request_hash=digest,
        respond=lambda decided: DecisionView.of(decided).model_dump(mode="json"),
        **fields,
    )
    if found.request_hash != digest:
        raise InvalidInput(
            "Idempotency-Key was already used with a different request",
            [Issue("Idempotency-Key", f"{idempotency_key!r} decided another request")],
        )
    return DecisionView.model_validate(found.response), not created
