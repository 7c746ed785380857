"""Child orchestrations in the engine: launching a step's child, and watching children end.

An orchestration step does not hold a worker slot while its child runs: the worker that
claimed it resolves the child's parameters, creates the child in one transaction
(:meth:`ChildRuns.start`) and lets go; the step stays ``running`` with no lease. The
:class:`ChildWatch` of every worker settles parent steps whose child ended: at once when a
run's terminal wake-up arrives, and every ``PODIUM_POLL_SECONDS`` regardless (S1: two
ticks at most). It also aborts active children whose parent step no longer waits for them
(the parent ran past its deadline), every ``PODIUM_SWEEP_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from podium.domain.outcomes import ErrorCode, StepError
from podium.domain.templating import TemplateContext, resolve
from podium.engine.executor import Outcome
from podium.errors import Conflict, InputResolutionError, NotFound, PodiumError
from podium.settings import Settings
from podium.storage.child_runs import ChildRuns
from podium.storage.records import ClaimedStep
from podium.storage.store import SqlStore

log = logging.getLogger(__name__)

T = TypeVar("T")
Db = Callable[..., Awaitable[Any]]

ENDED_STATUSES = ("completed", "failed", "aborted")


def is_orchestration_step(step: ClaimedStep) -> bool:
    return step.definition.step(step.step_id).type == "orchestration"


def child_parameters(step: ClaimedStep) -> dict[str, Any]:
    """The step's ``orchestration.parameters`` with every placeholder resolved.

    Raises :class:`InputResolutionError` naming the parameter's path.
    """
    target = step.definition.step(step.step_id).orchestration
    assert target is not None
    context = TemplateContext(
        parameters=step.parameters,
        steps=step.upstream,
        run={"id": step.run_id, "organizationSlug": step.organization_slug},
        readable_steps=step.readable_steps,
    )
    resolved = resolve(
        target.parameters, context, path=f"steps.{step.step_id}.orchestration.parameters"
    )
    assert isinstance(resolved, dict)
    return resolved


async def launch_child(
    step: ClaimedStep, store: SqlStore, settings: Settings, db: Db
) -> Outcome | None:
    """Start the child run of a claimed orchestration step.

    Returns None when the child runs (or already ran for this attempt, or the claim was
    lost): the worker lets go of the step without recording anything. Returns the failed
    :class:`Outcome` to record otherwise (``input_resolution_error``,
    ``child_definition_unavailable``, depth over the limit).
    """
    try:
        parameters = child_parameters(step)
    except InputResolutionError as exc:
        return Outcome(error=StepError(ErrorCode.INPUT_RESOLUTION_ERROR, exc.message, False))
    started = await db(ChildRuns(store).start, step, parameters, max_depth=settings.max_child_depth)
    if started.outcome == "failed":
        return Outcome(error=started.error, resolved_input={"parameters": parameters})
    log.info(
        "step %s of run %s: child run %s %s",
        step.step_id,
        step.run_id,
        started.child_run_id,
        started.outcome,
    )
    return None


class ChildWatch:
    """A worker's background loop that brings children's ends to their parents."""

    def __init__(self, store: SqlStore, settings: Settings, db: Db) -> None:
        self.children = ChildRuns(store)
        self.store = store
        self.settings = settings
        self._db = db
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def _on_wakeup(self, payload: str) -> None:
        """Any thread: a run reached a status; a terminal one may end a child."""
        kind, _, rest = payload.partition(":")
        if kind != "run" or rest.rpartition(":")[2] not in ENDED_STATUSES:
            return
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    async def run(self) -> None:
        """Until cancelled. Errors are logged and the loop goes on (B2)."""
        self._loop = asyncio.get_running_loop()
        self.store.add_listener(self._on_wakeup)
        last_orphan_check = 0.0
        try:
            while True:
                try:
                    await self._db(self.children.settle_ended)
                    if time.monotonic() - last_orphan_check >= self.settings.sweep_seconds:
                        last_orphan_check = time.monotonic()
                        await self._abort_orphans()
                except PodiumError as exc:
                    log.warning("child watch failed: %s", exc)
                except Exception:
                    log.exception("unexpected error in the child watch")
                # asyncio.timeout, not wait_for: a cancellation while the wake-up fires must
                # not be swallowed (the worker could not stop)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.poll_seconds):
                        await self._wake.wait()
                self._wake.clear()
        finally:
            self.store.remove_listener(self._on_wakeup)

    async def _abort_orphans(self) -> None:
        for run_id in await self._db(self.children.orphans):
            try:
                await self._db(
                    self.store.abort,
                    run_id,
                    actor="podium",
                    reason="its parent step no longer waits for it",
                )
                log.warning("child run %s aborted: its parent step no longer waits", run_id)
            except (Conflict, NotFound):
                pass  # it ended meanwhile
