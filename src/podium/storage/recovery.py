"""Operator actions on a run (spec section 8): retry and skip. Abort is in ``controls``.

Every action locks the run, checks what the run allows, changes it, appends an
``orchestration.recovery.action`` event naming the actor and note, and records itself in
``metadata.manualRecovery`` of the step, all in one transaction. A retry stays "in flight"
until its step settles, a skip until a worker claims the steps it released; meanwhile other
actions on the run are refused (409).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from podium.domain.events import EventType
from podium.domain.limits import bounded_members
from podium.domain.statuses import RunStatus, StepStatus
from podium.errors import Conflict, InvalidInput, Issue, NotFound
from podium.storage import snapshots
from podium.storage.runtx import RunTx, lock_run
from podium.storage.tables import steps

RETRYABLE = (StepStatus.FAILED,)
SKIPPABLE = (
    StepStatus.FAILED,
    StepStatus.PENDING,
    StepStatus.QUEUED,
    StepStatus.CHECKPOINT_PENDING,
)


@dataclass(frozen=True)
class ActionResult:
    """What an operator action did."""

    action: str
    run_id: str
    run_status: str
    step_record_id: str | None
    step_id: str | None
    generation: int | None = None


def check_actionable(rtx: RunTx, action: str, *, force: bool = False) -> None:
    """Refuse an action on a run that ended, or while another action is in flight."""
    if rtx.status in (RunStatus.COMPLETED, RunStatus.ABORTED):
        raise Conflict(f"run {rtx.run_id} is {rtx.status}: it cannot be changed ({action})")
    flight = rtx.recovery_in_flight
    if flight is not None and not force:
        raise Conflict(
            f"a {flight.get('action')} by {flight.get('actor')} is in flight on run "
            f"{rtx.run_id} (step {flight.get('stepId')}); wait until that step settles"
        )


def _target(
    rtx: RunTx, step_record_id: str | None, allowed: tuple[StepStatus, ...], action: str
) -> sa.RowMapping:
    columns = (
        steps.c.id,
        steps.c.step_id,
        steps.c.status,
        steps.c.generation,
        steps.c.metadata,
        steps.c.ended_at,
    )
    if step_record_id is not None:
        row = (
            rtx.conn.execute(
                sa.select(*columns).where(
                    steps.c.run_id == rtx.run_id, steps.c.id == step_record_id
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            raise NotFound(f"step {step_record_id} not found in run {rtx.run_id}")
        if row["status"] not in allowed:
            raise Conflict(
                f"step {row['step_id']} is {row['status']}: only "
                f"{', '.join(allowed)} steps can be {action}"
            )
        return row
    row = (
        rtx.conn.execute(
            sa.select(*columns)
            .where(steps.c.run_id == rtx.run_id, steps.c.status == StepStatus.FAILED)
            .order_by(steps.c.ended_at.desc(), steps.c.position.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )
    if row is None:
        raise Conflict(
            f"run {rtx.run_id} has no failed step to {action}; name one with stepRecordId"
        )
    return row


def _note(metadata: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    updated = dict(metadata)
    updated["manualRecovery"] = [*list(updated.get("manualRecovery") or []), entry]
    return updated


def retry(
    conn: sa.Connection,
    run_id: str,
    *,
    actor: str,
    note: str | None,
    step_record_id: str | None,
    delay_seconds: float,
    modifications: dict[str, Any] | None,
    now: datetime,
    skip_locked: bool,
    resume_child: bool = False,
) -> ActionResult:
    """Run a failed step again with a new generation (a new idempotency key).

    ``modifications.input`` is merged into its resolved input and
    ``modifications.agentOverrides`` (``{stepId: agentSlug}``) swaps its agent, for this
    generation only. The run returns to ``running`` unless other steps are still failed.
    For an orchestration step the new generation launches a fresh child (the old one is
    kept, listed in ``subOrchestration.previousChildRunIds``); with ``resume_child`` the
    failed child is retried in place instead and the step waits for it again.
    """
    rtx = lock_run(conn, run_id, now, skip_locked=skip_locked)
    check_actionable(rtx, "retry")
    target = _target(rtx, step_record_id, RETRYABLE, "retried")
    if resume_child:
        from podium.storage.resume import resume_child as resume  # issue 11

        return resume(rtx, target, actor=actor, note=note, retry=retry)
    mods = modifications or {}
    definition = snapshots.plan_for(conn, run_id).definition
    overrides = _overrides(mods, target["step_id"], definition.step_ids)
    generation = int(target["generation"]) + 1
    entry = {
        "action": "retry",
        "actor": actor,
        "note": note,
        "at": now.isoformat(),
        "generation": generation,
        "delaySeconds": delay_seconds,
        "modifications": mods or None,
    }
    metadata = _note(target["metadata"] or {}, entry)
    runtime = dict(metadata.get("runtime") or {})
    runtime.pop("retry", None)
    if overrides:
        runtime["overrides"] = {"generation": generation, **overrides}
    else:
        runtime.pop("overrides", None)
    metadata["runtime"] = runtime
    rtx.move_steps(
        [target["id"]],
        StepStatus.FAILED,
        StepStatus.PENDING,
        values={
            "generation": generation,
            "attempt": 1,
            "recoveries": 0,
            "error": None,
            "ended_at": None,
            "available_at": now + timedelta(seconds=delay_seconds),
            "metadata": metadata,
        },
        event=EventType.RECOVERY_ACTION,
        data={**_event_data(entry), "status": str(StepStatus.PENDING)},
    )
    others_failed = conn.execute(
        sa.select(sa.func.count()).where(
            steps.c.run_id == run_id, steps.c.status == StepStatus.FAILED
        )
    ).scalar_one()
    if not others_failed:
        # the failure the run reported is being dealt with
        rtx.move_run(RunStatus.RUNNING, {"reason": "retry", "actor": actor}, error=None)
        rtx.start_recovery(
            {
                "action": "retry",
                "actor": actor,
                "stepId": target["step_id"],
                "stepRecordId": target["id"],
                "at": now.isoformat(),
            }
        )
    rtx.close()
    return ActionResult(
        "retry", run_id, str(rtx.status), target["id"], target["step_id"], generation
    )


def skip(
    conn: sa.Connection,
    run_id: str,
    *,
    actor: str,
    note: str | None,
    step_record_id: str | None,
    replacement_output: Any,
    now: datetime,
    skip_locked: bool,
) -> ActionResult:
    """Mark a failed, pending, queued or checkpoint-pending step ``skipped`` with
    ``replacement_output`` (or ``{"skipped": true}``); its dependents proceed."""
    rtx = lock_run(conn, run_id, now, skip_locked=skip_locked)
    check_actionable(rtx, "skip")
    target = _target(rtx, step_record_id, SKIPPABLE, "skipped")
    spec = snapshots.plan_for(conn, run_id).definition.step(target["step_id"])
    replacement = {"skipped": True} if replacement_output is None else replacement_output
    output = skipped_output(replacement, mapped=spec.output_mapping is not None, agent=spec.agent)
    entry = {"action": "skip", "actor": actor, "note": note, "at": now.isoformat()}
    rtx.move_steps(
        [target["id"]],
        SKIPPABLE,
        StepStatus.SKIPPED,
        values={
            "output": output,
            "ended_at": now,
            "available_at": None,
            "lease_owner": None,
            "lease_expires_at": None,
            "metadata": _note(target["metadata"] or {}, entry),
        },
        data=bounded_members({**_event_data(entry), "output": output}),  # stored once: step
    )
    rtx.record_action(_event_data(entry), step_id=target["step_id"], step_record_id=target["id"])
    dependents = snapshots.plan_for(conn, run_id).dependents
    released = rtx.release_dependents([target["step_id"]], dependents)
    rtx.settle()
    if released and rtx.status is RunStatus.RUNNING:
        # in flight until a worker picks up what the skip released
        rtx.start_recovery(
            {
                "action": "skip",
                "actor": actor,
                "stepId": target["step_id"],
                "stepRecordId": None,
                "at": now.isoformat(),
            }
        )
    rtx.close()
    return ActionResult("skip", run_id, str(rtx.status), target["id"], target["step_id"])


def skipped_output(replacement: Any, *, mapped: bool, agent: str | None) -> Any:
    """The output a skipped step stores, shaped like the step's usual output so dependents
    read it the same way: as given for a step with ``output_mapping``, else wrapped in a
    normalized agent result (``steps.<id>.output`` is the replacement)."""
    if mapped:
        return replacement
    return {
        "success": True,
        "output": replacement,
        "artifacts": [],
        "message": None,
        "error": None,
        "agent": {"slug": agent, "cardVersion": None},
        "a2a": None,
        "timings": {},
        "skipped": True,
    }


def _event_data(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != "at" and v is not None}


def _overrides(mods: dict[str, Any], step_id: str, step_ids: list[str]) -> dict[str, Any]:
    """The input and agent changes that apply to ``step_id``; unknown keys are errors."""
    issues: list[Issue] = []
    unknown = set(mods) - {"input", "agentOverrides"}
    for key in sorted(unknown):
        issues.append(Issue(f"modifications.{key}", "unknown modification"))
    out: dict[str, Any] = {}
    if "input" in mods:
        if not isinstance(mods["input"], dict):
            issues.append(Issue("modifications.input", "must be an object"))
        else:
            out["input"] = mods["input"]
    agents = mods.get("agentOverrides")
    if agents is not None:
        if not isinstance(agents, dict) or not all(
            isinstance(v, str) and v for v in agents.values()
        ):
            issues.append(Issue("modifications.agentOverrides", "must map step ids to agent slugs"))
        else:
            for key in agents:
                if key not in step_ids:
                    issues.append(Issue(f"modifications.agentOverrides.{key}", "no such step"))
            if step_id in agents:
                out["agent"] = agents[step_id]
    if issues:
        raise InvalidInput("modifications are invalid", issues)
    return out
