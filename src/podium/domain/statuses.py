"""Run, step and approval statuses and the transitions allowed between them (spec section 3).

Every state change in storage goes through :func:`check_run_transition` or
:func:`check_step_transition`, so a transition that is not in these tables cannot be written.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from podium.errors import InvalidTransition


class RunStatus(StrEnum):
    PLANNING = "planning"
    RUNNING = "running"
    CHECKPOINT = "checkpoint"
    COMPLETED = "completed"
    FAILED = "failed"
    ABORTED = "aborted"

    @property
    def terminal(self) -> bool:
        return self in RUN_TERMINAL


class StepStatus(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    CHECKPOINT_PENDING = "checkpoint_pending"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    ABORTED = "aborted"

    @property
    def settled(self) -> bool:
        """True when the step lets its dependents proceed (completed or skipped)."""
        return self in (StepStatus.COMPLETED, StepStatus.SKIPPED)


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


RUN_TERMINAL = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.ABORTED})

# A failed run may return to running through an operator retry (spec section 8); completed and
# aborted runs are final.
RUN_TRANSITIONS: Mapping[RunStatus, frozenset[RunStatus]] = {
    RunStatus.PLANNING: frozenset({RunStatus.RUNNING, RunStatus.FAILED, RunStatus.ABORTED}),
    RunStatus.RUNNING: frozenset(
        {RunStatus.CHECKPOINT, RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.ABORTED}
    ),
    RunStatus.CHECKPOINT: frozenset(
        {RunStatus.RUNNING, RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.ABORTED}
    ),
    RunStatus.FAILED: frozenset({RunStatus.RUNNING, RunStatus.COMPLETED, RunStatus.ABORTED}),
    RunStatus.COMPLETED: frozenset(),
    RunStatus.ABORTED: frozenset(),
}

STEP_TRANSITIONS: Mapping[StepStatus, frozenset[StepStatus]] = {
    StepStatus.PENDING: frozenset(
        {StepStatus.QUEUED, StepStatus.SKIPPED, StepStatus.ABORTED, StepStatus.FAILED}
    ),
    StepStatus.QUEUED: frozenset(
        {
            StepStatus.RUNNING,
            StepStatus.PENDING,
            StepStatus.SKIPPED,
            StepStatus.ABORTED,
            StepStatus.FAILED,
            # a cache hit completes a step without running it
            StepStatus.COMPLETED,
            StepStatus.CHECKPOINT_PENDING,
        }
    ),
    StepStatus.RUNNING: frozenset(
        {
            StepStatus.COMPLETED,
            StepStatus.FAILED,
            StepStatus.CHECKPOINT_PENDING,
            # retry scheduled (pending until nextRetryAt) or lease reclaimed (queued again)
            StepStatus.PENDING,
            StepStatus.QUEUED,
            StepStatus.ABORTED,
        }
    ),
    StepStatus.CHECKPOINT_PENDING: frozenset(
        {
            StepStatus.COMPLETED,
            StepStatus.PENDING,
            StepStatus.SKIPPED,
            StepStatus.ABORTED,
            # an expired checkpoint with onTimeout: fail (checkpoint_expired)
            StepStatus.FAILED,
        }
    ),
    StepStatus.FAILED: frozenset(
        {
            StepStatus.PENDING,
            StepStatus.SKIPPED,
            StepStatus.ABORTED,
            # an orchestration step waits again for its child retried in place (resumeChild)
            StepStatus.RUNNING,
        }
    ),
    StepStatus.COMPLETED: frozenset(),
    StepStatus.SKIPPED: frozenset(),
    StepStatus.ABORTED: frozenset(),
}


def check_run_transition(current: RunStatus | str, new: RunStatus | str) -> None:
    """Raise :class:`InvalidTransition` unless a run may move from ``current`` to ``new``."""
    cur, nxt = RunStatus(current), RunStatus(new)
    if nxt != cur and nxt not in RUN_TRANSITIONS[cur]:
        raise InvalidTransition(f"run cannot move from {cur} to {nxt}")


def check_step_transition(current: StepStatus | str, new: StepStatus | str) -> None:
    """Raise :class:`InvalidTransition` unless a step may move from ``current`` to ``new``."""
    cur, nxt = StepStatus(current), StepStatus(new)
    if nxt not in STEP_TRANSITIONS[cur]:
        raise InvalidTransition(f"step cannot move from {cur} to {nxt}")


def run_status_from_steps(counts: Mapping[str, int], *, current: RunStatus) -> RunStatus:
    """The completion rule: the run status implied by its steps' status counts.

    ``completed`` only when every step is completed or skipped; ``failed`` once a step failed
    for good and nothing is still running; ``checkpoint`` when only approvals can move the run;
    otherwise the run keeps running. An aborted run stays aborted.
    """
    if current is RunStatus.ABORTED:
        return current
    total = sum(counts.values())
    done = counts.get(StepStatus.COMPLETED, 0) + counts.get(StepStatus.SKIPPED, 0)
    if total and done == total:
        return RunStatus.COMPLETED
    running = counts.get(StepStatus.RUNNING, 0)
    if counts.get(StepStatus.FAILED, 0) or counts.get(StepStatus.ABORTED, 0):
        return RunStatus.RUNNING if running else RunStatus.FAILED
    movable = running + counts.get(StepStatus.QUEUED, 0) + counts.get(StepStatus.PENDING, 0)
    if not movable and counts.get(StepStatus.CHECKPOINT_PENDING, 0):
        return RunStatus.CHECKPOINT
    return RunStatus.RUNNING
