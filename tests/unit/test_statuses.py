"""The transition tables and the completion rule of spec section 3."""

from __future__ import annotations

import pytest

from podium.domain.statuses import (
    RunStatus,
    StepStatus,
    check_run_transition,
    check_step_transition,
    run_status_from_steps,
)
from podium.errors import InvalidTransition


@pytest.mark.parametrize("final", [RunStatus.COMPLETED, RunStatus.ABORTED])
def test_completed_and_aborted_runs_are_final(final: RunStatus) -> None:
    for status in RunStatus:
        if status != final:
            with pytest.raises(InvalidTransition):
                check_run_transition(final, status)


def test_a_failed_run_can_be_resumed_by_an_operator() -> None:
    check_run_transition(RunStatus.FAILED, RunStatus.RUNNING)


@pytest.mark.parametrize("final", [StepStatus.COMPLETED, StepStatus.SKIPPED, StepStatus.ABORTED])
def test_settled_steps_never_move_again(final: StepStatus) -> None:
    for status in StepStatus:
        with pytest.raises(InvalidTransition):
            check_step_transition(final, status)


def test_a_pending_step_cannot_jump_to_completed() -> None:
    with pytest.raises(InvalidTransition, match="pending to completed"):
        check_step_transition(StepStatus.PENDING, StepStatus.COMPLETED)


def c(**counts: int) -> dict[str, int]:
    return {k: v for k, v in counts.items()}


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        (c(completed=3), RunStatus.COMPLETED),
        (c(completed=2, skipped=1), RunStatus.COMPLETED),
        (c(completed=2, pending=1), RunStatus.RUNNING),  # a retry is waiting
        (c(completed=2, failed=1), RunStatus.FAILED),
        (c(completed=1, failed=1, running=1), RunStatus.RUNNING),  # in flight settles first
        (c(completed=1, failed=1, queued=2), RunStatus.FAILED),  # fail-fast
        (c(completed=2, checkpoint_pending=1), RunStatus.CHECKPOINT),
        (c(checkpoint_pending=1, running=1), RunStatus.RUNNING),
    ],
)
def test_the_completion_rule(counts: dict[str, int], expected: RunStatus) -> None:
    assert run_status_from_steps(counts, current=RunStatus.RUNNING) == expected


def test_an_aborted_run_stays_aborted() -> None:
    assert run_status_from_steps(c(completed=1), current=RunStatus.ABORTED) is RunStatus.ABORTED
