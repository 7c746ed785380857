"""Child runs (spec section 6): creating a child, settling its parent step when it ends.

A ``type: orchestration`` step is claimed like any step. Its worker resolves the child's
parameters and calls :func:`start_child`, which creates the child run and records it on the
parent step in ONE transaction, then hands the step's lease back: the step stays
``running`` with no lease owner and no lease expiry (the sweeper never reclaims it, no
worker slot is held) until the child ends. :func:`settle_ended_children` then settles the
parent step in a follow-up transaction (woken by the child's terminal wake-up, and swept
every tick), so the child's end reaches the parent within two ticks (S1).

Lock order (docs/architecture.md, "Parent and child runs"): a child's id sorts after its
parent's, so id order is ancestor-first order, and every transaction here locks runs in id
order: creating a child locks the tree's root, then the parent; settling locks only the
parents; abort (:mod:`podium.storage.cascade`) locks the root, then the aborted run and its
descendants.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa

from podium.domain.definition import Definition, apply_parameters, parse_definition
from podium.domain.events import EventType
from podium.domain.ids import new_id_after
from podium.domain.limits import bounded_members
from podium.domain.outcomes import ErrorCode, StepError
from podium.domain.selectors import SelectorError, apply_output_mapping
from podium.domain.statuses import RunStatus, StepStatus
from podium.errors import NotFound, ParametersInvalid
from podium.settings import fault_point
from podium.storage import definitions, snapshots
from podium.storage.dialects import send_wakeup
from podium.storage.launch import create_run
from podium.storage.outputs import leaf_outputs
from podium.storage.records import ClaimedStep, LaunchRequest
from podium.storage.runtx import RunTx, close_all, lock_runs
from podium.storage.tables import runs, steps

ORCHESTRATION = "orchestration"
ENDED = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.ABORTED)
# the drill hook of S2: a test process sets PODIUM_FAULT to one of these points to be killed
# there (SIGKILL, nothing cleaned up); unset in every real deployment
FAULT_AFTER_CHILD_CREATED = "after_child_created"


@dataclass(frozen=True)
class ChildStart:
    """What :func:`start_child` did: ``started`` (a new child), ``existing`` (the child of
    this attempt was already there), ``lost`` (the claim is gone: nothing written) or
    ``failed`` (nothing written; the worker records ``error`` as the attempt's outcome)."""

    outcome: Literal["started", "existing", "lost", "failed"]
    child_run_id: str | None = None
    error: StepError | None = None


def child_version_range(definition: Definition, step_id: str) -> tuple[str, str | None]:
    target = definition.step(step_id).orchestration
    assert target is not None  # validation: orchestration steps name their target
    return target.name, target.version


def _range_text(version: str | None) -> str:
    return f"version {version!r}" if version else "any version"


def start_child(
    conn: sa.Connection,
    step: ClaimedStep,
    parameters: dict[str, Any],
    *,
    now: datetime,
    skip_locked: bool,
    max_depth: int,
) -> ChildStart:
    """Create the child run of ``step``'s current attempt and record it on the step.

    Idempotent per (step record, generation, attempt): an existing child is kept (S2; the
    unique index ``uq_runs_parent_step_attempt`` backs it). The child runs the highest
    active version of the target matching its range, in the parent's organization (or
    ``global``'s definition, still in the parent's organization), with ``parameters``
    validated as at launch.
    """
    parent = conn.execute(
        sa.select(runs.c.root_run_id, runs.c.depth).where(runs.c.id == step.run_id)
    ).first()
    if parent is None:
        return ChildStart("lost")
    root_id = parent.root_run_id or step.run_id
    # the tree's root first: an abort of any part of the tree holds it (storage.cascade)
    rtxs = lock_runs(conn, {root_id, step.run_id}, now, skip_locked=skip_locked, wait=True)
    try:
        rtx = next(r for r in rtxs if r.run_id == step.run_id)
        return _start_locked(rtx, step, parameters, root_id, parent.depth, max_depth)
    finally:
        close_all(rtxs)


def _start_locked(
    rtx: RunTx,
    step: ClaimedStep,
    parameters: dict[str, Any],
    root_id: str,
    parent_depth: int,
    max_depth: int,
) -> ChildStart:
    conn = rtx.conn
    row = conn.execute(
        sa.select(steps.c.metadata).where(
            steps.c.id == step.step_record_id,
            steps.c.claim_token == step.claim_token,
            steps.c.status == StepStatus.RUNNING,
            steps.c.lease_owner == step.worker_id,
        )
    ).first()
    if row is None or rtx.status is not RunStatus.RUNNING:
        return ChildStart("lost")
    existing = conn.execute(
        sa.select(runs.c.id, runs.c.definition_version).where(
            runs.c.parent_step_record_id == step.step_record_id,
            runs.c.parent_generation == step.generation,
            runs.c.parent_attempt == step.attempt,
        )
    ).first()
    name, version = child_version_range(step.definition, step.step_id)
    if existing is not None:
        _record_child(
            rtx, step, row.metadata, existing.id, name, version, existing.definition_version
        )
        return ChildStart("existing", existing.id)
    try:
        found = definitions.resolve(conn, rtx.organization_slug, name, version)
    except NotFound as exc:
        return ChildStart(
            "failed",
            error=StepError.of(
                ErrorCode.CHILD_DEFINITION_UNAVAILABLE,
                f"child definition {name} ({_range_text(version)}) is unavailable: {exc.message}",
                definition=name,
                versionRange=version,
            ),
        )
    depth = parent_depth + 1
    if depth > max_depth:
        return ChildStart(
            "failed",
            error=StepError.of(
                ErrorCode.VALIDATION_ERROR,
                f"child {name} would run at depth {depth}, deeper than "
                f"PODIUM_MAX_CHILD_DEPTH={max_depth}",
                definition=name,
            ),
        )
    child_definition = parse_definition(found.document)
    try:
        child_parameters = apply_parameters(child_definition, parameters)
    except ParametersInvalid as exc:
        where = "; ".join(
            f"steps.{step.step_id}.orchestration.{i.path}: {i.message}" for i in exc.issues
        )
        return ChildStart(
            "failed",
            error=StepError.of(
                ErrorCode.INPUT_RESOLUTION_ERROR,
                f"parameters of child {name} {found.version} do not fit it: {where}",
                issues=[vars(i) for i in exc.issues],
            ),
        )
    child_id = create_run(
        conn,
        LaunchRequest(
            definition=child_definition,
            parameters=child_parameters,
            organization_slug=rtx.organization_slug,
            parent_run_id=step.run_id,
            parent_step_record_id=step.step_record_id,
            metadata={
                "parentRunId": step.run_id,
                "parentStepRecordId": step.step_record_id,
                "parentStepId": step.step_id,
                "definitionOrganization": found.organization_slug,
            },
            # after the parent's id: id order stays ancestor-first (see module docstring)
            run_id=new_id_after(step.run_id),
            root_run_id=root_id,
            depth=depth,
            parent_generation=step.generation,
            parent_attempt=step.attempt,
        ),
        rtx.now,
        skip_locked=rtx.skip_locked,
    )
    fault_point(FAULT_AFTER_CHILD_CREATED)
    _record_child(rtx, step, row.metadata, child_id, name, version, found.version)
    return ChildStart("started", child_id)


def _record_child(
    rtx: RunTx,
    step: ClaimedStep,
    metadata: dict[str, Any],
    child_id: str,
    name: str,
    version_range: str | None,
    version: str,
) -> None:
    """``metadata.runtime.subOrchestration`` on the parent step, its lease handed back
    (running without a lease: no worker holds it while the child runs), and the
    ``orchestration.child.started`` event."""
    updated = dict(metadata)
    runtime = dict(updated.get("runtime") or {})
    previous = dict(runtime.get("subOrchestration") or {})
    history = list(previous.get("previousChildRunIds") or [])
    if previous.get("childRunId") not in (None, child_id):
        history.append(previous["childRunId"])
    sub: dict[str, Any] = {
        "childRunId": child_id,
        "definition": name,
        "version": version,
        "versionRange": version_range,
        "generation": step.generation,
        "attempt": step.attempt,
        "startedAt": rtx.now.isoformat(),
    }
    if history:
        sub["previousChildRunIds"] = history
    runtime["subOrchestration"] = sub
    updated["runtime"] = runtime
    rtx.conn.execute(
        steps.update()
        .where(steps.c.id == step.step_record_id, steps.c.claim_token == step.claim_token)
        .values(metadata=updated, lease_owner=None, lease_expires_at=None, updated_at=rtx.now)
    )
    rtx.emit(
        EventType.CHILD_STARTED,
        {"childRunId": child_id, "definition": name, "version": version, **_attempt(step)},
        step_id=step.step_id,
        step_record_id=step.step_record_id,
    )


def _attempt(step: ClaimedStep) -> dict[str, Any]:
    return {"attempt": step.attempt, "generation": step.generation}


# -- the child's end reaches the parent --------------------------------------------------

_child = runs.alias("child")

ENDED_CHILDREN = (
    sa.select(steps.c.run_id, _child.c.id.label("child_id"))
    .join(_child, _child.c.parent_step_record_id == steps.c.id)
    .where(
        steps.c.status == StepStatus.RUNNING,
        steps.c.type == ORCHESTRATION,
        steps.c.lease_owner.is_(None),
        _child.c.parent_generation == steps.c.generation,
        _child.c.parent_attempt == steps.c.attempt,
        _child.c.status.in_([str(s) for s in ENDED]),
    )
    .limit(500)
)


def any_ended_children(conn: sa.Connection) -> bool:
    """Whether some parent step waits for a child that has ended."""
    return conn.execute(ENDED_CHILDREN.limit(1)).first() is not None


def settle_ended_children(
    conn: sa.Connection,
    *,
    now: datetime,
    skip_locked: bool,
    child_ids: Iterable[str] | None = None,
) -> list[str]:
    """Settle every parent step (or those of ``child_ids``) whose child run ended.

    Child ``completed``: the step completes with the child's outputs (through its
    ``output_mapping``), ``orchestration.child.completed``. Child ``failed``/``aborted``:
    ``orchestration.child.failed`` with the child's error, and the step fails with
    ``child_orchestration_failed``/``_aborted`` (retried only if the step has its own
    ``retry`` policy with attempts left); the parent then follows its failure rules.
    Returns the ids of the children whose end was recorded.
    """
    query = ENDED_CHILDREN
    if child_ids is not None:
        ids = sorted(set(child_ids))
        if not ids:
            return []
        query = query.where(_child.c.id.in_(ids))
    by_parent: dict[str, list[str]] = {}
    for row in conn.execute(query):
        by_parent.setdefault(row.run_id, []).append(row.child_id)
    if not by_parent:
        return []
    settled: list[str] = []
    rtxs = lock_runs(conn, by_parent, now, skip_locked=skip_locked, wait=True)
    for rtx in rtxs:
        for child_id in by_parent[rtx.run_id]:
            if _settle_one(rtx, child_id):
                settled.append(child_id)
        rtx.settle()
    close_all(rtxs)
    if settled:
        # a parent step settled: its slot is free and dependents may be queued
        send_wakeup(conn, "steps")
    return settled


def _settle_one(rtx: RunTx, child_id: str) -> bool:
    """Settle the parent step of ``child_id`` in the locked parent run ``rtx``."""
    conn = rtx.conn
    # read under the parent's lock: a resumeChild retry (which holds it) cannot interleave
    child = conn.execute(
        sa.select(
            runs.c.status,
            runs.c.error,
            runs.c.parent_step_record_id,
            runs.c.parent_generation,
            runs.c.parent_attempt,
        ).where(runs.c.id == child_id)
    ).first()
    if child is None or child.status not in ENDED:
        return False
    step = conn.execute(
        sa.select(
            steps.c.id,
            steps.c.step_id,
            steps.c.claim_token,
            steps.c.attempt,
            steps.c.generation,
            steps.c.metadata,
        ).where(
            steps.c.id == child.parent_step_record_id,
            steps.c.status == StepStatus.RUNNING,
            steps.c.lease_owner.is_(None),
            steps.c.generation == child.parent_generation,
            steps.c.attempt == child.parent_attempt,
        )
    ).first()
    if step is None:
        return False
    plan = snapshots.plan_for(conn, rtx.run_id)
    spec = plan.definition.step(step.step_id)
    guard = steps.c.claim_token == step.claim_token
    base = {"childRunId": child_id, "attempt": step.attempt, "generation": step.generation}
    if child.status == RunStatus.COMPLETED:
        # the full results, from the child's step records (its run row holds large values
        # as truncation markers); the events carry them bounded, the step record in full
        results = leaf_outputs(conn, child_id)
        try:
            output = apply_output_mapping(results, spec.output_mapping)
        except SelectorError as exc:
            error = StepError(ErrorCode.OUTPUT_MAPPING_ERROR, str(exc), False)
            return _fail_step(rtx, step, None, error, guard)
        rtx.emit(
            EventType.CHILD_COMPLETED,
            {**base, "status": str(child.status), "outputs": bounded_members(results)},
            step_id=step.step_id,
            step_record_id=step.id,
        )
        moved = rtx.move_steps(
            [step.id],
            StepStatus.RUNNING,
            StepStatus.COMPLETED,
            values={"output": output, "ended_at": rtx.now, "error": None},
            data=bounded_members({**base, "output": output}),
            guard=guard,
        )
        if moved:
            rtx.release_dependents([step.step_id], plan.dependents)
        return bool(moved)
    aborted = child.status == RunStatus.ABORTED
    code = (
        ErrorCode.CHILD_ORCHESTRATION_ABORTED if aborted else ErrorCode.CHILD_ORCHESTRATION_FAILED
    )
    child_error = child.error or {}
    message = f"child run {child_id} {child.status}"
    if child_error.get("message"):
        message += f": {child_error['message']}"
    error = StepError(
        str(code), message, False, {"childRunId": child_id, "childError": child.error}
    )
    rtx.emit(
        EventType.CHILD_FAILED,
        {**base, "status": str(child.status), "error": child.error},
        step_id=step.step_id,
        step_record_id=step.id,
    )
    retry_at = _retry_at(plan.definition, step, rtx.now, plan.deadline_at)
    return _fail_step(rtx, step, retry_at, error, guard)


def _retry_at(
    definition: Definition, step: Any, now: datetime, deadline: datetime | None
) -> datetime | None:
    """When to launch a fresh child after a failed one: only with the step's own ``retry``
    policy and attempts left (a child's failure is not transient by default)."""
    spec = definition.step(step.step_id)
    if spec.retry is None or step.attempt >= spec.retry.maxAttempts:
        return None
    at = now + timedelta(milliseconds=spec.retry.delay_ms(step.attempt))
    return None if deadline is not None and at >= deadline else at


def _fail_step(
    rtx: RunTx,
    step: Any,
    retry_at: datetime | None,
    error: StepError,
    guard: sa.ColumnElement[bool],
) -> bool:
    """Fail the parent step for good, or (``retry_at``) schedule a fresh child then."""
    err = error.to_dict()
    data = {"attempt": step.attempt, "generation": step.generation, "error": err}
    if retry_at is None:
        moved = rtx.move_steps(
            [step.id],
            StepStatus.RUNNING,
            StepStatus.FAILED,
            values={"error": err, "ended_at": rtx.now},
            data=data,
            guard=guard,
        )
        return bool(moved)
    metadata = dict(step.metadata)
    runtime = dict(metadata.get("runtime") or {})
    runtime["retry"] = {
        "attempt": step.attempt + 1,
        "nextRetryAt": retry_at.isoformat(),
        "lastError": err,
    }
    metadata["runtime"] = runtime
    moved = rtx.move_steps(
        [step.id],
        StepStatus.RUNNING,
        StepStatus.PENDING,
        values={
            "error": err,
            "available_at": retry_at,
            "attempt": step.attempt + 1,
            "metadata": metadata,
        },
        data={**data, "nextAttempt": step.attempt + 1, "nextRetryAt": retry_at.isoformat()},
        event=EventType.STEP_RETRY_SCHEDULED,
        guard=guard,
    )
    return bool(moved)
