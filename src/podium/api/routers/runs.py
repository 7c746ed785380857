"""Runs (spec section 13): launch, list, detail, compact status, step records and event log
(the approvals inbox is in ``approvals``). Every read is scoped to the caller's
organization: another organization's run answers 404."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Response

from podium.api.deps import ActorDep, StoreDep
from podium.api.openapi import errors
from podium.api.query import strict_query
from podium.api.schemas import MAX_SEQUENCE, IsoDatetime, LaunchBody, RunId, StepRecordId
from podium.service import runs
from podium.service.views import (
    EventView,
    Page,
    RunDetail,
    RunStatusView,
    RunSummary,
    RunTreeNode,
    StepDetail,
)

router = APIRouter(
    prefix="/api/orchestrations", tags=["runs"], dependencies=[Depends(strict_query)]
)

RunStatusName = Literal["planning", "running", "checkpoint", "completed", "failed", "aborted"]


@router.post(
    "",
    status_code=201,
    response_model=RunSummary,
    summary="Launch a run",
    responses={
        201: {
            "description": "The run was created.",
            "headers": {
                "Location": {"description": "The run's URL.", "schema": {"type": "string"}}
            },
        },
        200: {
            "description": "A replay: this Idempotency-Key already launched this run.",
            "model": RunSummary,
            "headers": {
                "Idempotent-Replayed": {
                    "description": "Always `true`.",
                    "schema": {"type": "string", "enum": ["true"]},
                },
                "Location": {"description": "The run's URL.", "schema": {"type": "string"}},
            },
        },
        **errors(403, 404, 422, 503),
    },
)
def launch(
    body: LaunchBody,
    response: Response,
    store: StoreDep,
    actor: ActorDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            pattern=r"^[\x20-\x7e]+$",
            description="Launch at most once per key (per organization); a repeat replays.",
        ),
    ] = None,
) -> RunSummary:
    """Launch the active version of a definition. With ``Idempotency-Key`` the same request
    again returns the first response (200, ``Idempotent-Replayed: true``); the same key with
    another body is a 422."""
    summary, replayed = runs.launch(
        store,
        actor,
        definition=body.definition,
        version=body.version,
        parameters=body.parameters,
        idempotency_key=idempotency_key,
        refresh=body.refresh,
    )
    response.headers["Location"] = f"{router.prefix}/{summary.id}"
    if replayed:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return summary


@router.get(
    "",
    response_model=Page[RunSummary],
    summary="List runs",
    responses=errors(422, 503),
)
def list_runs(
    store: StoreDep,
    actor: ActorDep,
    status: Annotated[
        list[RunStatusName] | None, Query(description="Only runs in these statuses.")
    ] = None,
    lifecycle: Annotated[
        Literal["active", "completed", "all"],
        Query(description="active: not yet ended; completed: ended in any way."),
    ] = "all",
    definition: Annotated[str | None, Query(max_length=200)] = None,
    parent_run_id: Annotated[str | None, Query(alias="parentRunId", max_length=64)] = None,
    search: Annotated[
        str | None, Query(max_length=200, description="Text in the id or definition.")
    ] = None,
    created_after: Annotated[IsoDatetime | None, Query(alias="createdAfter")] = None,
    created_before: Annotated[IsoDatetime | None, Query(alias="createdBefore")] = None,
    cursor: Annotated[
        str | None, Query(max_length=64, description="`nextCursor` of the previous page.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=runs.MAX_PAGE)] = 50,
) -> Page[RunSummary]:
    """Runs newest first, one page at a time."""
    return runs.list_runs(
        store,
        actor,
        status=list(status or []),
        lifecycle=lifecycle,
        definition=definition,
        parent_run_id=parent_run_id,
        search=search,
        created_after=created_after,
        created_before=created_before,
        cursor=cursor,
        limit=limit,
    )


@router.get(
    "/{runId}", response_model=RunDetail, summary="Run detail", responses=errors(404, 422, 503)
)
def run_detail(run_id: RunId, store: StoreDep, actor: ActorDep) -> RunDetail:
    """The run, its steps, pending approvals, parent and children."""
    return runs.detail(store, actor, run_id)


@router.get(
    "/{runId}/tree",
    response_model=list[RunTreeNode],
    summary="Tree of runs",
    responses=errors(404, 422, 503),
)
def run_tree(run_id: RunId, store: StoreDep, actor: ActorDep) -> list[RunTreeNode]:
    """The run and its descendants (children, grandchildren, ...), depth-first, with their
    statuses and step progress."""
    return runs.tree(store, actor, run_id)


@router.get(
    "/{runId}/status",
    response_model=RunStatusView,
    summary="Compact run status",
    responses=errors(404, 422, 503),
)
def run_status(run_id: RunId, store: StoreDep, actor: ActorDep) -> RunStatusView:
    """Run status, step statuses, current steps, progress and pending approvals."""
    return runs.status(store, actor, run_id)


@router.get(
    "/{runId}/steps/{stepRecordId}",
    response_model=StepDetail,
    summary="Step record",
    responses=errors(404, 422, 503),
)
def step_detail(
    run_id: RunId, step_record_id: StepRecordId, store: StoreDep, actor: ActorDep
) -> StepDetail:
    """The full step record with its attempts."""
    return runs.step(store, actor, run_id, step_record_id)


@router.get(
    "/{runId}/events",
    response_model=list[EventView],
    summary="Event log",
    responses=errors(404, 422, 503),
)
def event_log(
    run_id: RunId,
    store: StoreDep,
    actor: ActorDep,
    after: Annotated[
        int, Query(ge=0, le=MAX_SEQUENCE, description="Only events with a larger sequence.")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> list[EventView]:
    """The run's events in sequence order."""
    return runs.events(store, actor, run_id, after=after, limit=limit)
