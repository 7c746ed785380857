"""Manual recovery (spec section 8): ``POST /api/orchestrations/{runId}/actions/{action}``.

Each action is recorded with the caller's key name as actor. Terminal runs, and runs with
another action in flight, answer 409; of concurrent actions exactly one wins.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from podium.api.deps import ActorDep, StoreDep
from podium.api.openapi import errors
from podium.api.query import strict_query
from podium.api.schemas import ACTION_FIELDS, ActionBody, RunId
from podium.errors import InvalidInput, Issue
from podium.service import recovery
from podium.service.views import ActionView

router = APIRouter(
    prefix="/api/orchestrations/{runId}/actions",
    tags=["recovery"],
    dependencies=[Depends(strict_query)],
)

RESPONSES: dict[int | str, dict[str, Any]] = errors(403, 404, 409, 422, 503)


def _check_fields(action: str, body: ActionBody) -> None:
    """Refuse members that do not apply to ``action`` (null and ``force: false`` are unset)."""
    allowed = ACTION_FIELDS[action]
    issues = [
        Issue(f"body.{name}", f"does not apply to {action}")
        for name in sorted(body.model_fields_set - allowed)
        if getattr(body, name) not in (None, False)
    ]
    if issues:
        raise InvalidInput(f"invalid {action} request", issues)


@router.post("/retry", response_model=ActionView, summary="Retry a step", responses=RESPONSES)
def retry(
    run_id: RunId, store: StoreDep, actor: ActorDep, body: ActionBody | None = None
) -> ActionView:
    """Run the last failed step (or ``stepRecordId``) again with a new generation,
    optionally after ``delaySeconds`` and with ``modifications``; the run returns to
    ``running``."""
    body = body or ActionBody()
    _check_fields("retry", body)
    return recovery.retry(
        store,
        actor,
        run_id,
        step_record_id=body.stepRecordId,
        note=body.note,
        delay_seconds=body.delaySeconds or 0.0,
        modifications=(
            body.modifications.model_dump(exclude_none=True) if body.modifications else None
        ),
        resume_child=bool(body.resumeChild),
    )


@router.post("/skip", response_model=ActionView, summary="Skip a step", responses=RESPONSES)
def skip(
    run_id: RunId, store: StoreDep, actor: ActorDep, body: ActionBody | None = None
) -> ActionView:
    """Mark the last failed step (or ``stepRecordId``: a failed, pending or checkpoint-pending
    one) ``skipped`` with ``replacementOutput``; its dependents proceed."""
    body = body or ActionBody()
    _check_fields("skip", body)
    return recovery.skip(
        store,
        actor,
        run_id,
        step_record_id=body.stepRecordId,
        note=body.note,
        replacement_output=body.replacementOutput,
    )


@router.post("/abort", response_model=ActionView, summary="Abort the run", responses=RESPONSES)
def abort(
    run_id: RunId, store: StoreDep, actor: ActorDep, body: ActionBody | None = None
) -> ActionView:
    """Stop new work, cancel running agent calls, expire pending approvals and mark the run
    ``aborted``. Refused while another action is in flight unless ``force``."""
    body = body or ActionBody()
    _check_fields("abort", body)
    return recovery.abort(store, actor, run_id, note=body.note, force=bool(body.force))
