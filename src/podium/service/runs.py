"""Runs: launch, list, detail, compact status, step records and the event log.

The same functions serve the HTTP API and the local CLI; every read is scoped to the
actor's organization, so another organization's run is simply not found.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from podium.domain.limits import bounded_members
from podium.domain.statuses import StepStatus
from podium.errors import InvalidInput, Issue
from podium.service import approvals
from podium.service.actors import Actor
from podium.service.views import (
    AttemptView,
    EventView,
    Page,
    Progress,
    RunDetail,
    RunStatusView,
    RunSummary,
    RunTreeNode,
    RunView,
    StepDetail,
    StepView,
)
from podium.storage.records import RunRecord
from podium.storage.store import SqlStore

LIFECYCLES = {
    "active": ("planning", "running", "checkpoint"),
    "completed": ("completed", "failed", "aborted"),
    "all": (),
}
MAX_PAGE = 200


def request_hash(body: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a request body (sorted keys, no spaces)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def launch(
    store: SqlStore,
    actor: Actor,
    *,
    definition: str,
    version: str | None = None,
    parameters: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    refresh: bool = False,
) -> tuple[RunSummary, bool]:
    """Launch the active version of ``definition`` matching ``version`` (exact or range;
    the highest active one without). With ``idempotency_key`` a repeated request returns the
    first one's run instead of launching again. Returns the run and whether it was replayed.
    With ``refresh`` the run's cached steps are computed again and their entries replaced.
    """
    # the engine's launcher and the definition model: loaded by a launch, not by a read
    from podium.domain.definition import parse_definition
    from podium.engine.launcher import check_child_graph, prepare

    actor.require("operator", "launch runs")
    body: dict[str, Any] = {
        "definition": definition,
        "version": version,
        "parameters": parameters or {},
    }
    metadata: dict[str, Any] = {"launchedBy": actor.name}
    if refresh:  # step cache (issue 12): read by the executor's cache port
        body["refresh"] = True
        metadata["refreshCache"] = True
    record = store.resolve_definition(actor.organization, definition, version)
    request = prepare(
        parse_definition(record.document),
        parameters or {},
        organization=actor.organization,
        metadata={**metadata, "definitionOrganization": record.organization_slug},
    )
    check_child_graph(store, request.definition, organization=actor.organization)
    if idempotency_key is None:
        run_id = store.launch(request)
        return RunSummary.of(store.get_run(run_id)), False
    digest = request_hash(body)
    found, created = store.launch_idempotent(
        request,
        key=idempotency_key,
        request_hash=digest,
        respond=lambda run: RunSummary.of(run).model_dump(mode="json"),
    )
    if found.request_hash != digest:
        raise InvalidInput(
            "Idempotency-Key was already used with a different request",
            [Issue("Idempotency-Key", f"{idempotency_key!r} belongs to run {found.run_id}")],
        )
    return RunSummary.model_validate(found.response), not created


def list_runs(
    store: SqlStore,
    actor: Actor,
    *,
    status: list[str] | None = None,
    lifecycle: str = "all",
    definition: str | None = None,
    parent_run_id: str | None = None,
    search: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[RunSummary]:
    """Runs newest first; pass ``nextCursor`` back as ``cursor`` for the next page."""
    if lifecycle not in LIFECYCLES:
        raise InvalidInput(
            "invalid filter",
            [Issue("lifecycle", f"must be one of {', '.join(LIFECYCLES)}, not {lifecycle!r}")],
        )
    statuses = list(status or [])
    if LIFECYCLES[lifecycle]:
        statuses = (
            [s for s in statuses if s in LIFECYCLES[lifecycle]]
            if statuses
            else list(LIFECYCLES[lifecycle])
        )
        if not statuses:
            return Page[RunSummary](items=[], nextCursor=None)
    limit = max(1, min(limit, MAX_PAGE))
    found = store.list_runs(
        organization=actor.organization,
        statuses=statuses,
        definition=definition,
        parent_run_id=parent_run_id,
        search=search,
        created_after=created_after,
        created_before=created_before,
        before_id=cursor,
        limit=limit + 1,
    )
    items = [RunSummary.of(r) for r in found[:limit]]
    return Page[RunSummary](items=items, nextCursor=items[-1].id if len(found) > limit else None)


def _run(store: SqlStore, actor: Actor, run_id: str) -> RunRecord:
    return store.get_run(store.find_run_id(run_id, actor.organization), actor.organization)


def detail(store: SqlStore, actor: Actor, run_id: str) -> RunDetail:
    """The run, its steps, pending approvals, parent and children."""
    run = _run(store, actor, run_id)
    parent = (
        RunSummary.of(store.get_run(run.parent_run_id, actor.organization))
        if run.parent_run_id
        else None
    )
    children = store.list_runs(
        organization=actor.organization, parent_run_id=run.id, limit=MAX_PAGE
    )
    definition = store.definition_of(run.id)
    view = RunView.of(run)
    if view.outputs:
        # the run's outputs are its leaf steps' outputs, listed below in full: each large
        # value comes back once, not twice (the marker points to the step record)
        view = view.model_copy(update={"outputs": bounded_members(view.outputs)})
    return RunDetail(
        run=view,
        steps=[
            StepView.of(s, max_attempts=definition.retry_policy(s.step_id).maxAttempts)
            for s in store.steps_of(run.id)
        ],
        approvals=approvals.pending_of_run(store, run.id),
        parent=parent,
        children=[RunSummary.of(c) for c in children],
    )


def status(store: SqlStore, actor: Actor, run_id: str) -> RunStatusView:
    """The compact status: run status, each step's status, what runs now, progress."""
    run = _run(store, actor, run_id)
    steps = store.steps_of(run.id)
    counts = {s: 0 for s in StepStatus}
    for step in steps:
        counts[StepStatus(step.status)] += 1
    done = counts[StepStatus.COMPLETED] + counts[StepStatus.SKIPPED]
    return RunStatusView(
        runId=run.id,
        status=run.status,
        definition=run.definition_name,
        version=run.definition_version,
        progress=Progress(
            total=len(steps),
            completed=counts[StepStatus.COMPLETED],
            skipped=counts[StepStatus.SKIPPED],
            failed=counts[StepStatus.FAILED],
            running=counts[StepStatus.RUNNING],
            queued=counts[StepStatus.QUEUED],
            pending=counts[StepStatus.PENDING],
            checkpointPending=counts[StepStatus.CHECKPOINT_PENDING],
            aborted=counts[StepStatus.ABORTED],
            percent=round(100.0 * done / len(steps), 1) if steps else 100.0,
        ),
        currentSteps=[s.step_id for s in steps if s.status == StepStatus.RUNNING],
        steps={s.step_id: s.status for s in steps},
        pendingApprovals=approvals.pending_of_run(store, run.id),
        error=run.error,
        recoveryInFlight=run.recovery_in_flight,
        updatedAt=run.updated_at,
    )


def step(store: SqlStore, actor: Actor, run_id: str, step_record_id: str) -> StepDetail:
    """A step record with its attempts."""
    run = _run(store, actor, run_id)
    record = store.get_step(step_record_id, run.id)
    policy = store.definition_of(run.id).retry_policy(record.step_id)
    return StepDetail(
        **StepView.of(record, max_attempts=policy.maxAttempts).model_dump(),
        attempts=[AttemptView.of(a) for a in store.attempts_of(record.id)],
    )


def events(
    store: SqlStore, actor: Actor, run_id: str, *, after: int = 0, limit: int = 1000
) -> list[EventView]:
    """The run's events with ``sequence > after``, in order."""
    run = _run(store, actor, run_id)
    return [EventView.of(e) for e in store.events_after(run.id, after, max(1, min(limit, 5000)))]


def tree(store: SqlStore, actor: Actor, run_id: str) -> list[RunTreeNode]:
    """The run and all its descendants (children, grandchildren, ...), depth-first, with
    their statuses and step progress (issue 11)."""
    from podium.storage.child_runs import ChildRuns

    run = _run(store, actor, run_id)
    nodes = ChildRuns(store).tree(run.id, actor.organization)
    top = nodes[0].depth if nodes else 0
    return [
        RunTreeNode(
            id=n.id,
            definition=n.definition_name,
            version=n.definition_version,
            status=n.status,
            depth=n.depth - top,
            parentRunId=n.parent_run_id,
            parentStepId=n.parent_step_id,
            createdAt=n.created_at,
            startedAt=n.started_at,
            endedAt=n.ended_at,
            stepsTotal=n.steps_total,
            stepsDone=n.steps_done,
        )
        for n in nodes
    ]
