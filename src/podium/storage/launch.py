"""Creating a run: the run row, one step record per step, and the first events, in one
transaction of three statements (:meth:`RunTx.start_new_run`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from podium.domain.ids import new_id
from podium.domain.limits import bounded_members
from podium.domain.statuses import RunStatus, StepStatus
from podium.storage import snapshots
from podium.storage.records import LaunchRequest
from podium.storage.runtx import RunTx


def create_run(
    conn: sa.Connection, request: LaunchRequest, now: datetime, *, skip_locked: bool
) -> str:
    """Insert a run pinned to ``request.definition`` with its root steps queued.

    The run passes through ``planning`` to ``running`` inside this transaction, so it is
    written in its final state with the events of both. Parameters must already be
    validated and defaulted. Returns the new run id.
    """
    definition = request.definition
    run_id = request.run_id or new_id()
    execution = definition.orchestration.execution
    deadline = (
        now + timedelta(seconds=execution.timeoutSeconds) if execution.timeoutSeconds else None
    )
    row: dict[str, Any] = {
        "id": run_id,
        "organization_slug": request.organization_slug,
        "definition_name": definition.metadata.name,
        "definition_version": definition.metadata.version,
        "snapshot": definition.shared_document(),
        "parameters": request.parameters,
        "status": str(RunStatus.PLANNING),
        "max_parallel_steps": execution.concurrency.maxParallelSteps,
        "outputs": None,
        "error": None,
        "metadata": request.metadata,
        "parent_run_id": request.parent_run_id,
        "parent_step_record_id": request.parent_step_record_id,
        "last_sequence": 0,
        "created_at": now,
        "started_at": now,
        "ended_at": None,
        "updated_at": now,
        "deadline_at": deadline,
        "root_run_id": request.root_run_id or run_id,
        "depth": request.depth,
        "parent_generation": request.parent_generation,
        "parent_attempt": request.parent_attempt,
    }
    step_rows = []
    for position, spec in enumerate(definition.orchestration.steps):
        deps = len(set(spec.depends_on))
        step_rows.append(
            {
                "id": new_id(),
                "run_id": run_id,
                "step_id": spec.id,
                "position": position,
                "type": spec.type,
                "agent": spec.agent,
                # roots are runnable at once
                "status": str(StepStatus.QUEUED if deps == 0 else StepStatus.PENDING),
                "deps_remaining": deps,
                "attempt": 1,
                "generation": 1,
                "queued_at": now if deps == 0 else None,
                "updated_at": now,
                "metadata": {"runtime": {}},
            }
        )
    rtx = RunTx(conn, row, now, skip_locked=skip_locked)
    rtx.start_new_run(
        row,
        step_rows,
        {
            "definition": definition.metadata.name,
            "version": definition.metadata.version,
            # the run row holds them; the event only when small (live streams read events)
            "parameters": bounded_members(request.parameters),
            "parentRunId": request.parent_run_id,
            "parentStepRecordId": request.parent_step_record_id,
            "steps": [s.id for s in definition.orchestration.steps],
        },
    )
    snapshots.remember(
        run_id,
        snapshots.RunPlan(
            definition=definition,
            parameters=request.parameters,
            organization_slug=request.organization_slug,
            deadline_at=deadline,
        ),
    )
    return run_id
