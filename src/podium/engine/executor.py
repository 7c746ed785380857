"""Running one claimed step: resolve its input, call its agent, map its output.

Pure of storage: it returns an :class:`Outcome` and the worker records it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from podium import metrics
from podium.agents.base import AgentContext, AgentError, AgentResolver
from podium.domain.outcomes import ErrorCode, StepError
from podium.domain.selectors import SelectorError, apply_output_mapping
from podium.domain.templating import TemplateContext, resolve
from podium.engine.cache import CacheDecision, StepCachePort
from podium.errors import InputResolutionError
from podium.storage.cache import CacheWrite
from podium.storage.records import ClaimedStep


@dataclass(frozen=True)
class Outcome:
    """What one attempt produced: an output, or an error (never both)."""

    output: Any = None
    error: StepError | None = None
    resolved_input: Any = None
    # step cache (issue 12): what the settlement stores or records; None when not cached
    cache: CacheWrite | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


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


async def execute(
    step: ClaimedStep,
    agents: AgentResolver,
    save_runtime: Callable[[str, Any], Awaitable[None]] | None = None,
    cache: StepCachePort | None = None,
) -> Outcome:
    """Run one attempt of ``step``; every failure becomes a classified :class:`StepError`.

    With ``cache``, a step whose caching is enabled is served from the step cache when it
    can be (the agent is not called), and otherwise carries the cache write to its
    settlement."""
    spec = step.definition.step(step.step_id)
    context = TemplateContext(
        parameters=step.parameters,
        steps=step.upstream,
        run={"id": step.run_id, "organizationSlug": step.organization_slug},
        readable_steps=step.readable_steps,
    )
    try:
        resolved = resolve(spec.input, context, path=f"steps.{step.step_id}.input")
    except InputResolutionError as exc:
        return Outcome(error=StepError(ErrorCode.INPUT_RESOLUTION_ERROR, exc.message, False))
    slug = spec.agent or ""
    overrides = operator_overrides(step)
    if "input" in overrides:
        resolved = merge(resolved, overrides["input"])
    slug = overrides.get("agent", slug)
    decision = CacheDecision()
    try:
        agent = agents.resolve(slug, step.organization_slug)
        # step cache (issue 12): a hit completes through the normal settlement path
        if cache is not None:
            decision = await cache.decide(step, slug, agent, resolved, step_timeout(step))
            if decision.hit is not None:
                output = decision.hit.output
                return Outcome(output=output, resolved_input=resolved, cache=decision.write)
        call = agent.invoke(
            resolved,
            AgentContext(
                run_id=step.run_id,
                step_id=step.step_id,
                step_record_id=step.step_record_id,
                organization_slug=step.organization_slug,
                attempt=step.attempt,
                generation=step.generation,
                idempotency_key=step.idempotency_key,
                agent_slug=slug,
                runtime=step.metadata.get("runtime") or {},
                save_runtime=save_runtime,
            ),
        )
        timeout = step_timeout(step)
        try:
            async with asyncio.timeout(timeout):
                result = await call
        except TimeoutError:
            metrics.agent_call(slug, ErrorCode.AGENT_TIMEOUT)
            return Outcome(
                error=StepError.of(
                    ErrorCode.AGENT_TIMEOUT,
                    f"agent {slug!r} did not answer within {timeout:.3g} s",
                    timeoutSeconds=timeout,
                ),
                resolved_input=resolved,
                cache=decision.write,
            )
    except AgentError as exc:
        metrics.agent_call(slug, exc.code)
        return Outcome(error=exc.to_step_error(), resolved_input=resolved, cache=decision.write)
    metrics.agent_call(slug, "success")
    try:
        output = apply_output_mapping(result, spec.output_mapping)
    except SelectorError as exc:
        # an unmappable output is a failure: never cached (the settlement ends the flight)
        return Outcome(
            error=StepError(ErrorCode.OUTPUT_MAPPING_ERROR, str(exc), False),
            resolved_input=resolved,
            cache=decision.write,
        )
    return Outcome(output=output, resolved_input=resolved, cache=decision.write)
