"""Running one claimed step: resolve its input, run it by its kind, check what came out.

Pure of storage: it returns an :class:`Outcome` and the worker records it. Total: whatever
goes wrong inside an attempt becomes the attempt's classified :class:`StepError` (never an
exception that leaves the step claimed until its lease expires):

* a template that cannot be resolved: ``input_resolution_error``;
* an exception from the agent: ``agent_execution_error`` (retryable);
* an output that cannot be stored (:mod:`podium.domain.payloads`): ``agent_output_invalid``;
* anything else, a bug in Podium: ``internal_error``, its stack logged once.

Only cancellation (the worker lost the step) and :class:`LeaseLost` (from ``save_runtime``)
pass through. Steps are dispatched by kind (:data:`RUNNERS`); around each attempt the
:class:`~podium.engine.attempt.StepPorts` seam offers a step cache and attempt observers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from podium.agents.base import AgentContext, AgentError, AgentResolver
from podium.domain.outcomes import ErrorCode, StepError
from podium.domain.payloads import PayloadInvalid, check_payload
from podium.domain.selectors import SelectorError, apply_output_mapping
from podium.domain.templating import TemplateContext, resolve
from podium.engine.attempt import Outcome, SaveRuntime, StepPorts
from podium.errors import InputResolutionError, LeaseLost, StorageUnavailable

if TYPE_CHECKING:  # the executor never imports storage; it only reads the record
    from podium.storage.records import ClaimedStep

__all__ = ["RUNNERS", "Outcome", "StepRunner", "execute", "register_step_kind"]

log = logging.getLogger(__name__)

# runs one kind of step on its resolved input; may raise (execute() classifies it)
StepRunner = Callable[["ClaimedStep", Any, AgentResolver, StepPorts], Awaitable[Outcome]]


def step_timeout(step: ClaimedStep, now: datetime | None = None) -> float | None:
    """Seconds this attempt may take: the step's ``timeoutSeconds``, cut by the run deadline."""
    spec = step.definition.step(step.step_id)
    limits: list[float] = []
    if spec.timeoutSeconds is not None:
        limits.append(float(spec.timeoutSeconds))
    if step.deadline_at is not None:
        remaining = (step.deadline_at - (now or datetime.now(UTC))).total_seconds()
        limits.append(max(remaining, 0.0))
    return min(limits) if limits else None


def operator_overrides(step: ClaimedStep) -> dict[str, Any]:
    """Input and agent changes an operator's retry made for this generation of the step."""
    runtime = step.metadata.get("runtime") or {}
    overrides = runtime.get("overrides") or {}
    return overrides if overrides.get("generation") == step.generation else {}


def merge(base: Any, changes: Any) -> Any:
    """``changes`` merged into ``base``: objects key by key (recursively), anything else
    replaced."""
    if isinstance(base, dict) and isinstance(changes, dict):
        merged = dict(base)
        for key, value in changes.items():
            merged[key] = merge(base.get(key), value)
        return merged
    return changes


def _failure(code: ErrorCode, message: str, retryable: bool, resolved: Any = None) -> Outcome:
    return Outcome(error=StepError(str(code), message, retryable), resolved_input=resolved)


def resolve_input(step: ClaimedStep) -> Any:
    """The step's input with its templates resolved and an operator retry's changes merged
    in; raises :class:`InputResolutionError` for any template failure."""
    spec = step.definition.step(step.step_id)
    context = TemplateContext(
        parameters=step.parameters,
        steps=step.upstream,
        run={"id": step.run_id, "organizationSlug": step.organization_slug},
        readable_steps=step.readable_steps,
    )
    path = f"steps.{step.step_id}.input"
    try:
        resolved = resolve(spec.input, context, path=path)
    except InputResolutionError:
        raise
    except RecursionError:
        raise InputResolutionError(f"{path}: nested too deeply to resolve") from None
    except Exception as exc:
        raise InputResolutionError(f"{path}: {type(exc).__name__}: {exc}") from exc
    overrides = operator_overrides(step)
    if "input" in overrides:
        resolved = merge(resolved, overrides["input"])
    return resolved


async def run_agent(
    step: ClaimedStep, resolved: Any, agents: AgentResolver, ports: StepPorts
) -> Outcome:
    """The ``agent`` kind: call the step's agent (or an operator retry's replacement)."""
    spec = step.definition.step(step.step_id)
    slug = operator_overrides(step).get("agent", spec.agent or "")
    try:
        agent = agents.resolve(slug, step.organization_slug)
    except AgentError as exc:
        return Outcome(error=exc.to_step_error(), resolved_input=resolved)
    # the step cache (issue 12): a hit completes through the normal settlement path
    write = None
    if ports.step_cache is not None:
        decision = await ports.step_cache.decide(step, slug, agent, resolved, step_timeout(step))
        if decision.hit is not None:
            return Outcome(
                output=decision.hit.output, resolved_input=resolved, cache=decision.write
            )
        write = decision.write
    context = AgentContext(
        run_id=step.run_id,
        step_id=step.step_id,
        step_record_id=step.step_record_id,
        organization_slug=step.organization_slug,
        attempt=step.attempt,
        generation=step.generation,
        idempotency_key=step.idempotency_key,
        agent_slug=slug,
        runtime=step.metadata.get("runtime") or {},
        save_runtime=ports.save_runtime,
        report_progress=ports.report_progress,
    )
    timeout = step_timeout(step)
    try:
        async with asyncio.timeout(timeout):
            result = await agent.invoke(resolved, context)
    except TimeoutError:
        return Outcome(
            error=StepError.of(
                ErrorCode.AGENT_TIMEOUT,
                f"agent {slug!r} did not answer within {timeout:.3g} s",
                timeoutSeconds=timeout,
            ),
            resolved_input=resolved,
            cache=write,
        )
    except AgentError as exc:
        return Outcome(error=exc.to_step_error(), resolved_input=resolved, cache=write)
    except (asyncio.CancelledError, LeaseLost):
        raise
    except Exception as exc:  # the agent's own failure: worth another attempt
        failed = _failure(
            ErrorCode.AGENT_EXECUTION_ERROR,
            f"agent {slug!r} raised {type(exc).__name__}: {exc}",
            True,
            resolved,
        )
        return replace(failed, cache=write)
    try:
        output = apply_output_mapping(result, spec.output_mapping)
    except SelectorError as exc:
        # an unmappable output is a failure: never cached (the settlement ends the flight)
        failed = _failure(ErrorCode.OUTPUT_MAPPING_ERROR, str(exc), False, resolved)
        return replace(failed, cache=write)
    return Outcome(output=output, resolved_input=resolved, cache=write)


RUNNERS: dict[str, StepRunner] = {"agent": run_agent}
"""Step kind (``type`` of the step) -> how an attempt of it runs."""


def register_step_kind(kind: str, runner: StepRunner) -> None:
    """Make steps of ``type: kind`` run with ``runner`` (child orchestrations, ...)."""
    RUNNERS[kind] = runner


def step_kind(step: ClaimedStep) -> str:
    return str(step.definition.step(step.step_id).type)


async def execute(
    step: ClaimedStep,
    agents: AgentResolver,
    save_runtime: SaveRuntime | None = None,
    *,
    ports: StepPorts | None = None,
) -> Outcome:
    """Run one attempt of ``step``; every failure becomes a classified :class:`StepError`.

    ``save_runtime`` is kept for callers that pass only it; ``ports`` carries it and the
    rest of the seam (see :mod:`podium.engine.attempt`).
    """
    if ports is None:
        ports = StepPorts(save_runtime=save_runtime)
    elif save_runtime is not None and ports.save_runtime is None:
        ports = StepPorts(
            save_runtime=save_runtime,
            report_progress=ports.report_progress,
            cache=ports.cache,
            observers=ports.observers,
            limits=ports.limits,
        )
    started = time.monotonic()
    kind = "unknown"
    try:
        kind, outcome = await _attempt(step, agents, ports)
    except (asyncio.CancelledError, LeaseLost):
        raise
    except Exception as exc:
        log.exception(
            "internal error in step %s of run %s (attempt %d)",
            step.step_id,
            step.run_id,
            step.attempt,
        )
        outcome = _failure(
            ErrorCode.INTERNAL_ERROR,
            f"internal error: {type(exc).__name__}: {exc}",
            # the database being away is no fault of the step: let a later attempt try
            isinstance(exc, StorageUnavailable),
        )
    seconds = time.monotonic() - started
    for observer in ports.observers:
        try:
            observer.attempt_finished(step, kind, outcome, seconds)
        except Exception:
            log.exception("attempt observer %r failed", observer)
    return outcome


async def _attempt(
    step: ClaimedStep, agents: AgentResolver, ports: StepPorts
) -> tuple[str, Outcome]:
    try:
        resolved = resolve_input(step)
    except InputResolutionError as exc:
        return "input", _failure(ErrorCode.INPUT_RESOLUTION_ERROR, exc.message, False)
    if ports.cache is not None:
        try:
            hit = await ports.cache.lookup(step, resolved)
        except Exception:
            log.exception("step cache lookup failed for step %s", step.step_id)
            hit = None
        if hit is not None:
            return "cached", hit
    kind = step_kind(step)
    runner = RUNNERS.get(kind)
    if runner is None:
        return kind, _failure(
            ErrorCode.INTERNAL_ERROR, f"steps of type {kind!r} cannot run here", False
        )
    outcome = await runner(step, resolved, agents, ports)
    if outcome.ok:
        outcome = checked_output(outcome, ports)
    if outcome.ok and ports.cache is not None:
        try:
            await ports.cache.store(step, resolved, outcome)
        except Exception:
            log.exception("step cache store failed for step %s", step.step_id)
    return kind, outcome


def checked_output(outcome: Outcome, ports: StepPorts) -> Outcome:
    """``outcome``, or ``agent_output_invalid`` if its output cannot be stored."""
    try:
        check_payload(outcome.output, ports.limits, "output")
    except PayloadInvalid as exc:
        return Outcome(
            error=StepError.of(ErrorCode.AGENT_OUTPUT_INVALID, str(exc), path=exc.path),
            resolved_input=outcome.resolved_input,
            cache=outcome.cache,  # the settlement ends the cache's single flight
        )
    return outcome
