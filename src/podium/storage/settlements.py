"""Recording what became of step attempts, many at a time (group commit).

A worker hands over every attempt that finished since its last write; one transaction
records them all, queues the dependents they release, claims follow-up work for the slots
they free, and applies the completion rule. Each settlement is fenced by its claim token:
one that lost its lease is left out (and reported), the others still commit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from podium.domain.events import EventType
from podium.domain.outcomes import StepError
from podium.domain.statuses import RunStatus, StepStatus
from podium.storage import cache as step_cache
from podium.storage import checkpoints, snapshots
from podium.storage.claims import claim_in_run
from podium.storage.records import ClaimedStep
from podium.storage.runtx import RunTx, close_all, lock_runs
from podium.storage.tables import steps


@dataclass(frozen=True)
class Settlement:
    """One finished attempt: an output, or an error with the retry time (None: final)."""

    step: ClaimedStep
    output: Any = None
    error: StepError | None = None
    retry_at: datetime | None = None
    resolved_input: Any = None
    # step cache (issue 12): store the result with the completion, or record the hit
    cache: step_cache.CacheWrite | None = None


@dataclass
class Recorded:
    claimed: list[ClaimedStep] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # step record ids fenced out
    wake_others: bool = False  # queued work was left for other workers


def record(
    conn: sa.Connection,
    settlements: Sequence[Settlement],
    *,
    worker_id: str,
    claim_next: int,
    lease_seconds: float,
    now: datetime,
    skip_locked: bool,
) -> Recorded:
    """Record ``settlements`` in one transaction; claim up to ``claim_next`` follow-up steps
    of the same runs for ``worker_id``."""
    result = Recorded()
    by_run: dict[str, list[Settlement]] = {}
    for s in settlements:
        by_run.setdefault(s.step.run_id, []).append(s)
    budget = claim_next
    rtxs = lock_runs(conn, by_run, now, skip_locked=skip_locked, wait=True)
    for rtx in rtxs:
        run_id = rtx.run_id
        plan = snapshots.plan_for(conn, run_id)
        dependents = plan.dependents
        released = 0
        for s in by_run[run_id]:
            # human checkpoints (spec section 5): the output is recorded and the step waits
            # for a decision instead of completing; an A2A task asking for input likewise
            checkpoint = plan.definition.step(s.step.step_id).checkpoint_after
            if s.error is None and checkpoint is not None:
                accepted = checkpoints.hold_for_checkpoint(
                    rtx,
                    s.step,
                    checkpoint,
                    output=s.output,
                    resolved_input=s.resolved_input,
                    attempt_data=_attempt_data(s.step),
                )
                if accepted and s.cache is not None:
                    _checkpointed_cache(rtx, s)
            elif checkpoints.asks_for_input(s.error):
                assert s.error is not None
                accepted = checkpoints.hold_for_input(
                    rtx,
                    s.step,
                    s.error,
                    resolved_input=s.resolved_input,
                    attempt_data=_attempt_data(s.step),
                )
            elif s.error is None:
                accepted, queued = _complete(rtx, s, dependents)
                released += queued
            else:
                accepted = _fail(rtx, s)
            if not accepted:
                result.lost.append(s.step.step_record_id)
        claimed: list[ClaimedStep] = []
        if budget > 0 and rtx.status is RunStatus.RUNNING:
            claimed = claim_in_run(
                rtx, worker_id=worker_id, limit=budget, lease_seconds=lease_seconds
            )
            budget -= len(claimed)
            result.claimed += claimed
        if released > len(claimed):
            result.wake_others = True
        if not claimed:  # a step just claimed keeps the run running: nothing to settle
            rtx.settle()
    close_all(rtxs)
    return result


def _attempt_data(step: ClaimedStep) -> dict[str, Any]:
    """What an attempt's end event says about the attempt (attempt history comes from it)."""
    return {
        "attempt": step.attempt,
        "generation": step.generation,
        "claimToken": step.claim_token,
        "workerId": step.worker_id,
    }


def _checkpointed_cache(rtx: RunTx, s: Settlement) -> None:
    """The step cache for a result held at a checkpoint: a hit is recorded (and still
    waits for its approval); a computed result is not stored, since a human may reject it,
    and its single flight ends so that identical calls compute on their own."""
    write = s.cache
    assert write is not None
    if write.hit is not None:
        step_cache.settle_completed(rtx, s.step, write, s.output)
    else:
        step_cache.release_flight(
            rtx.conn, write.organization_slug, write.fingerprint, s.step.step_record_id
        )


def _complete(rtx: RunTx, s: Settlement, dependents: Mapping[str, list[str]]) -> tuple[bool, int]:
    """Complete the step and queue the dependents it releases: (accepted, queued)."""
    step, write = s.step, s.cache

    def cached() -> dict[str, Any]:
        # step cache (issue 12): the entry is written in this transaction, only for a
        # completion that was accepted (fenced)
        return step_cache.settle_completed(rtx, step, write, s.output) if write else {}

    return rtx.complete_and_release(
        step.step_record_id,
        step.step_id,
        dependents,
        claim_token=step.claim_token,
        output=s.output,
        resolved_input=s.resolved_input,
        data=_attempt_data(step),
        also=cached if write is not None else None,
    )


def _fail(rtx: RunTx, s: Settlement) -> bool:
    """Schedule the retry at ``retry_at``, or fail the step for good (fail-fast follows)."""
    step, retry_at = s.step, s.retry_at
    assert s.error is not None
    if s.cache is not None and s.cache.hit is None:  # step cache (issue 12): end the flight
        step_cache.release_flight(
            rtx.conn, s.cache.organization_slug, s.cache.fingerprint, step.step_record_id
        )
    guard = steps.c.claim_token == step.claim_token
    err = s.error.to_dict()
    common: dict[str, Any] = {"error": err, "lease_owner": None, "lease_expires_at": None}
    if s.resolved_input is not None:
        common["input"] = s.resolved_input
    if retry_at is not None:
        metadata = dict(step.metadata)
        runtime = dict(metadata.get("runtime") or {})
        runtime["retry"] = {
            "attempt": step.attempt + 1,
            "nextRetryAt": retry_at.isoformat(),
            "lastError": err,
        }
        metadata["runtime"] = runtime
        moved = rtx.move_steps(
            [step.step_record_id],
            StepStatus.RUNNING,
            StepStatus.PENDING,
            values={
                **common,
                "available_at": retry_at,
                "attempt": step.attempt + 1,
                "metadata": metadata,
            },
            data={
                **_attempt_data(step),
                "nextAttempt": step.attempt + 1,
                "nextRetryAt": retry_at.isoformat(),
                "error": err,
            },
            event=EventType.STEP_RETRY_SCHEDULED,
            guard=guard,
        )
    else:
        moved = rtx.move_steps(
            [step.step_record_id],
            StepStatus.RUNNING,
            StepStatus.FAILED,
            values={**common, "ended_at": rtx.now},
            data={**_attempt_data(step), "error": err},
            guard=guard,
        )
    return bool(moved)
