"""Creating a run: the run row, one step record per step, and the first events, in one
transaction."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from podium.domain.events import EventType
from podium.domain.ids import new_id
from podium.domain.statuses import RunStatus, StepStatus
from podium.storage import snapshots
from podium.storage.records import LaunchRequest
from podium.storage.runtx import RunTx
from podium.storage.tables import runs, steps


def create_run(
    conn: sa.Connection, request: LaunchRequest, now: datetime, *, skip_locked: bool
) -> str:
    """Insert a run pinned to ``request.definition`` and queue its root steps.

    Returns the new run id. Parameters must already be validated and defaulted.
    """
    definition = request.definition
    run_id = new_id()
    execution = definition.orchestration.execution
    deadline = (
        now + timedelta(seconds=execution.timeoutSeconds) if execution.timeoutSeconds else None
    )
    row: dict[str, Any] = {
        "id": run_id,
        "organization_slug": request.organization_slug,
        "definition_name": definition.metadata.name,
        "definition_version": definition.metadata.version,
        "snapshot": definition.to_document(),
        "parameters": request.parameters,
        "status": str(RunStatus.PLANNING),
        "max_parallel_steps": execution.concurrency.maxParallelSteps,
        "metadata": request.metadata,
        "parent_run_id": request.parent_run_id,
        "parent_step_record_id": request.parent_step_record_id,
        "last_sequence": 0,
        "created_at": now,
        "started_at": now,
        "updated_at": now,
        "deadline_at": deadline,
    }
    conn.execute(runs.insert().values(row))
    snapshots.remember(
        run_id,
        snapshots.RunPlan(
            definition=definition,
            parameters=request.parameters,
            organization_slug=request.organization_slug,
            deadline_at=deadline,
        ),
    )
    step_rows = []
    for position, spec in enumerate(definition.orchestration.steps):
        step_rows.append(
            {
                "id": new_id(),
                "run_id": run_id,
                "step_id": spec.id,
                "position": position,
                "type": spec.type,
                "agent": spec.agent,
                "status": str(StepStatus.PENDING),
                "deps_remaining": len(set(spec.depends_on)),
                "attempt": 1,
                "generation": 1,
                "updated_at": now,
                "metadata": {"runtime": {}},
            }
        )
    conn.execute(steps.insert(), step_rows)
    rtx = RunTx(conn, row, now, skip_locked=skip_locked)
    rtx.emit(
        EventType.RUN_CREATED,
        {
            "status": str(RunStatus.PLANNING),
            "definition": definition.metadata.name,
            "version": definition.metadata.version,
            "parameters": request.parameters,
            "parentRunId": request.parent_run_id,
            "steps": [s.id for s in definition.orchestration.steps],
        },
    )
    roots = [str(r["id"]) for r in step_rows if r["deps_remaining"] == 0]
    rtx.move_steps(roots, StepStatus.PENDING, StepStatus.QUEUED)
    rtx.move_run(RunStatus.RUNNING)
    rtx.close()
    return run_id
