"""The approvals inbox (spec sections 5 and 13): list, show, decide.

Scoped to the caller's organization: another organization's approval answers 404, exactly
like one that does not exist. A decision on an approval that is no longer pending answers
409 naming the decision already taken; of concurrent decisions exactly one wins (A2).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Response
from pydantic import Field

from podium.api.deps import ActorDep, StoreDep
from podium.api.openapi import errors
from podium.api.query import strict_query
from podium.api.schemas import ID_PATTERN, Body, Modifications
from podium.service import approvals
from podium.service.approvals import ApprovalView, DecisionView
from podium.service.views import Page

router = APIRouter(
    prefix="/api/orchestrations/approvals",
    tags=["approvals"],
    dependencies=[Depends(strict_query)],
)

ApprovalId = Annotated[
    str, Path(alias="approvalId", min_length=1, max_length=64, pattern=ID_PATTERN)
]
StatusName = Literal["pending", "approved", "rejected", "expired", "all"]


class ResponseBody(Body):
    """The human's answer to an agent that asked for input (kind ``input``)."""

    text: str | None = Field(default=None, max_length=approvals.MAX_RESPONSE_TEXT)
    data: Any = Field(default=None, description="Structured answer, sent as a data part.")


class DecisionBody(Body):
    """``POST /api/orchestrations/approvals/{approvalId}/decision``."""

    decision: approvals.DecisionName
    note: str | None = Field(default=None, max_length=approvals.MAX_NOTE, description="Why.")
    modifications: Modifications | None = Field(
        default=None, description="retry only: input changes and agent overrides."
    )
    response: ResponseBody | None = Field(default=None, description="respond only.")


@router.get(
    "",
    response_model=Page[ApprovalView],
    summary="List approvals",
    responses=errors(404, 422, 503),
)
def list_approvals(
    store: StoreDep,
    actor: ActorDep,
    status: Annotated[
        list[StatusName] | None, Query(description="Default: pending. `all` for every status.")
    ] = None,
    run_id: Annotated[str | None, Query(alias="runId", max_length=64)] = None,
    definition: Annotated[str | None, Query(max_length=200)] = None,
    kind: Annotated[Literal["checkpoint", "input"] | None, Query()] = None,
    cursor: Annotated[
        str | None, Query(max_length=64, description="`nextCursor` of the previous page.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=approvals.MAX_PAGE)] = 50,
) -> Page[ApprovalView]:
    """The organization's approvals, newest first, one page at a time."""
    return approvals.list_approvals(
        store,
        actor,
        status=list(status or []),
        run_id=run_id,
        definition=definition,
        kind=kind,
        cursor=cursor,
        limit=limit,
    )


@router.get(
    "/{approvalId}",
    response_model=ApprovalView,
    summary="Show an approval",
    responses=errors(404, 422, 503),
)
def show(approval_id: ApprovalId, store: StoreDep, actor: ActorDep) -> ApprovalView:
    """One approval: question, options, the step's output, and the decision once taken."""
    return approvals.show(store, actor, approval_id)


@router.post(
    "/{approvalId}/decision",
    response_model=DecisionView,
    summary="Decide an approval",
    responses={
        200: {
            "description": "Decided (or a replay of an earlier request with the same key).",
            "headers": {
                "Idempotent-Replayed": {
                    "description": "`true` on a replay.",
                    "schema": {"type": "string", "enum": ["true"]},
                }
            },
        },
        **errors(403, 404, 409, 422, 503),
    },
)
def decide(
    approval_id: ApprovalId,
    body: DecisionBody,
    response: Response,
    store: StoreDep,
    actor: ActorDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=200,
            pattern=r"^[\x20-\x7e]+$",
            description="Decide at most once per key; a repeat replays the first answer.",
        ),
    ] = None,
) -> DecisionView:
    """``continue``, ``retry`` (optionally with ``modifications``), ``abort``, or
    ``respond`` with ``response`` for an agent's question."""
    view, replayed = approvals.decide(
        store,
        actor,
        approval_id,
        decision=body.decision,
        note=body.note,
        modifications=(
            body.modifications.model_dump(exclude_none=True) if body.modifications else None
        ),
        response=body.response.model_dump(exclude_none=True) if body.response else None,
        idempotency_key=idempotency_key,
    )
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return view
