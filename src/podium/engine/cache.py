"""The step cache as the executor sees it: decide, before an agent call, whether to serve a
stored result, compute (owning the fingerprint), or wait for the owner of an identical call.

The executor receives a :class:`StepCachePort` as it receives ``save_runtime``; the worker
passes a :class:`StepCache` over the store. The decision's :class:`CacheWrite` travels with the
outcome into the settlement, which stores the entry in the completion's transaction.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from podium import metrics
from podium.agents.base import Agent
from podium.domain.definition import CacheSettings, Definition
from podium.domain.fingerprint import Unfingerprintable, fingerprint
from podium.errors import PodiumError
from podium.storage.cache import CacheEntry, CacheStore, CacheWrite
from podium.storage.records import ClaimedStep

log = logging.getLogger(__name__)

T = TypeVar("T")

# how long an owner of a fingerprint may compute when the step has no timeoutSeconds
DEFAULT_FLIGHT_SECONDS = 600.0
_POLL_SECONDS = 0.1


@dataclass(frozen=True)
class CacheDecision:
    """``hit``: serve it without calling the agent; else compute and hand ``write`` (None:
    not cached) to the settlement."""

    write: CacheWrite | None = None
    hit: CacheEntry | None = None


class StepCachePort(Protocol):
    """What the executor asks of the cache before calling an agent."""

    async def decide(
        self, step: ClaimedStep, slug: str, agent: Agent, resolved: Any, wait_seconds: float | None
    ) -> CacheDecision: ...


def effective_settings(definition: Definition, step_id: str) -> CacheSettings:
    """The cache settings of one step (see :meth:`Definition.cache_settings`)."""
    return definition.cache_settings(step_id)


def agent_version(agent: Agent) -> str | None:
    """The agent's identity in a fingerprint: its card version (A2A) or its
    ``module:function`` (python); a new version of the agent misses the old entries."""
    target = getattr(agent, "target", None)
    if isinstance(target, str):
        return target
    card = getattr(agent, "card", None)
    if isinstance(card, dict):
        version = card.get("version")
        return str(version) if version is not None else None
    return None


class StepCache:
    """The cache port over :class:`CacheStore`; ``run_db`` runs a blocking store call the
    way the worker runs its transactions."""

    def __init__(
        self,
        store: CacheStore,
        run_db: Callable[..., Awaitable[Any]] | None = None,
        *,
        poll_seconds: float = _POLL_SECONDS,
    ) -> None:
        self.store = store
        self._run_db = run_db
        self.poll_seconds = poll_seconds

    async def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._run_db is not None:
            result: T = await self._run_db(fn, *args, **kwargs)
            return result
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def decide(
        self, step: ClaimedStep, slug: str, agent: Agent, resolved: Any, wait_seconds: float | None
    ) -> CacheDecision:
        """Serve, compute or wait (bounded by ``wait_seconds``); storage errors degrade to an
        uncached call rather than failing the step."""
        settings = effective_settings(step.definition, step.step_id)
        if not settings.enabled:
            return CacheDecision()
        try:
            fp = fingerprint(
                resolved,
                agent=slug,
                agent_version=agent_version(agent),
                definition=step.definition.metadata.name,
                step=step.step_id,
                cache_version=settings.version,
                exclude=settings.exclude,
                sort_arrays=settings.sortArrays,
            )
        except Unfingerprintable as exc:
            await self._warn(step, f"input cannot be fingerprinted ({exc}); running uncached")
            return CacheDecision()
        write = CacheWrite(
            fingerprint=fp,
            organization_slug=step.organization_slug,
            definition_name=step.definition.metadata.name,
            step_id=step.step_id,
            agent=slug,
            ttl_seconds=settings.ttlSeconds,
        )
        try:
            return await self._serve_or_own(step, write, wait_seconds)
        except PodiumError as exc:
            log.warning("step cache unavailable for step %s: %s", step.step_id, exc)
            return CacheDecision()

    async def _serve_or_own(
        self, step: ClaimedStep, write: CacheWrite, wait_seconds: float | None
    ) -> CacheDecision:
        org, fp = write.organization_slug, write.fingerprint
        definition = write.definition_name
        if await self._db(self.store.refresh_requested, step.run_id):
            metrics.cache_request("miss", definition, step.step_id)
            return CacheDecision(write=write)  # recompute; the settlement replaces the entry
        lease = wait_seconds if wait_seconds is not None else DEFAULT_FLIGHT_SECONDS
        deadline = time.monotonic() + lease
        first: str | None = None
        while True:
            result, entry = await self._db(self.store.lookup, org, fp, _now())
            if entry is not None:  # served: one hit, however long it waited for it
                metrics.cache_request("hit", definition, step.step_id)
                return CacheDecision(write=replace(write, hit=entry), hit=entry)
            first = first or result
            owner = await self._db(
                self.store.claim_flight,
                org,
                fp,
                step.step_record_id,
                lease_seconds=lease,
                now=_now(),
            )
            if owner:  # computed: one miss (or expiry), as the first lookup found it
                metrics.cache_request(first, definition, step.step_id)
                return CacheDecision(write=write)
            # someone computes the same thing: wait until they store it or die
            while await self._db(self.store.flight_live, org, fp, _now()):
                if time.monotonic() >= deadline:  # waited the step's timeout: compute
                    metrics.cache_request(first, definition, step.step_id)
                    return CacheDecision(write=write)
                await asyncio.sleep(self.poll_seconds)

    async def _warn(self, step: ClaimedStep, message: str) -> None:
        log.warning("step %s of run %s: %s", step.step_id, step.run_id, message)
        try:
            await self._db(self.store.warn, step, message, _now())
        except PodiumError as exc:
            log.warning("could not record the cache warning: %s", exc)


def _now() -> datetime:
    return datetime.now(UTC)
