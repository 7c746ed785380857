"""Manual recovery (spec section 8): retry, skip and abort, recorded with their actor."""

from __future__ import annotations

from typing import Any

from podium import metrics
from podium.errors import InvalidInput, Issue
from podium.service.actors import Actor
from podium.service.views import ActionView
from podium.storage.recovery import ActionResult
from podium.storage.store import SqlStore

MAX_DELAY_SECONDS = 7 * 24 * 3600


def _run_id(store: SqlStore, actor: Actor, run_id: str) -> str:
    return store.find_run_id(run_id, actor.organization)


def retry(
    store: SqlStore,
    actor: Actor,
    run_id: str,
    *,
    step_record_id: str | None = None,
    note: str | None = None,
    delay_seconds: float = 0.0,
    modifications: dict[str, Any] | None = None,
    resume_child: bool = False,
) -> ActionView:
    """Run the last failed step (or ``step_record_id``) again with a new generation; with
    ``resume_child`` an orchestration step's failed child is retried in place instead."""
    actor.require("operator", "retry steps")
    if not 0 <= delay_seconds <= MAX_DELAY_SECONDS:
        raise InvalidInput(
            "invalid retry",
            [Issue("delaySeconds", f"must be between 0 and {MAX_DELAY_SECONDS}")],
        )
    result = store.retry(
        _run_id(store, actor, run_id),
        actor=actor.name,
        note=note,
        step_record_id=step_record_id,
        delay_seconds=delay_seconds,
        modifications=modifications,
        resume_child=resume_child,
    )
    metrics.recovery("retry")
    return ActionView.of(result)


def skip(
    store: SqlStore,
    actor: Actor,
    run_id: str,
    *,
    step_record_id: str | None = None,
    note: str | None = None,
    replacement_output: Any = None,
) -> ActionView:
    """Skip the last failed step (or ``step_record_id``) with a replacement output."""
    actor.require("operator", "skip steps")
    result = store.skip(
        _run_id(store, actor, run_id),
        actor=actor.name,
        note=note,
        step_record_id=step_record_id,
        replacement_output=replacement_output,
    )
    metrics.recovery("skip")
    return ActionView.of(result)


def abort(
    store: SqlStore, actor: Actor, run_id: str, *, note: str | None = None, force: bool = False
) -> ActionView:
    """Abort the run: no new work, running agent calls cancelled, approvals expired.
    Refused while another action is in flight unless ``force``."""
    actor.require("operator", "abort runs")
    full = _run_id(store, actor, run_id)
    store.abort(full, actor=actor.name, reason=note, force=force)
    metrics.recovery("abort")
    run = store.get_run(full)
    return ActionView.of(ActionResult("abort", full, run.status, None, None))
