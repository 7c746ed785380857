"""Where the engine finds agents by slug.

* :class:`LocalAgents`: python agents registered in this process (the built-in demo agents
  under ``global``); for tests and embedded use.
* :class:`Registry`: the registry of spec section 7, backed by the database, with the local
  agents as the last resort. Every agent it gives out checks the routing policy before each
  call and honours the agent's concurrency limit and timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from podium.agents.base import Agent, AgentContext, AgentError, AgentResolver
from podium.agents.demo import BUILTIN_AGENTS
from podium.agents.policy.routing import (
    POLICY_DOCUMENT,
    Call,
    PolicySource,
    Router,
    RoutingPolicy,
    StaticPolicy,
    StoredPolicy,
)
from podium.agents.python import PythonAgent
from podium.domain.outcomes import ErrorCode
from podium.errors import PodiumError
from podium.logs import log_fields
from podium.net.urlguard import GuardedTransport, UrlGuard, refusal_in
from podium.storage.agents import AgentRecord
from podium.storage.store import SqlStore

GLOBAL = "global"
log = logging.getLogger(__name__)
T = TypeVar("T")

A2AFactory = Callable[[AgentRecord, UrlGuard], Agent]
"""Builds the client of an ``a2a`` agent record; it must connect only through the guard."""


class LocalAgents:
    """An :class:`~podium.agents.base.AgentResolver` over agents registered in this process."""

    def __init__(self, *, builtins: bool = True) -> None:
        self._agents: dict[tuple[str, str], Agent] = {}
        if builtins:
            for slug, fn in BUILTIN_AGENTS.items():
                self.add(PythonAgent(slug, fn))

    def add(self, agent: Agent, organization_slug: str = GLOBAL) -> None:
        self._agents[(organization_slug, agent.slug)] = agent

    def add_python(
        self, slug: str, target: str | Callable[..., Any], organization_slug: str = GLOBAL
    ) -> None:
        """Register ``module:function`` (or a callable) as python agent ``slug``."""
        agent = (
            PythonAgent.from_target(slug, target)
            if isinstance(target, str)
            else PythonAgent(slug, target)
        )
        self.add(agent, organization_slug)

    def add_many(self, mapping: Mapping[str, str], organization_slug: str = GLOBAL) -> None:
        for slug, target in mapping.items():
            self.add_python(slug, target, organization_slug)

    def resolve(self, slug: str, organization_slug: str) -> Agent:
        agent = self._agents.get((organization_slug, slug)) or self._agents.get((GLOBAL, slug))
        if agent is None:
            raise AgentError(
                ErrorCode.AGENT_NOT_FOUND,
                f"agent {slug!r} is not registered for organization {organization_slug!r} "
                "or global",
            )
        return agent

    def slugs(self) -> list[str]:
        return sorted({slug for _, slug in self._agents})


# -- the database-backed registry -------------------------------------------------------------

_live: weakref.WeakSet[Registry] = weakref.WeakSet()


def registry_changed() -> None:
    """Tell every :class:`Registry` of this process that agents or the routing policy
    changed, so that the next call reads them again. Other processes see the change when
    their cache expires (``cache_seconds``). Safe to call from any thread."""
    for registry in list(_live):
        registry.invalidate()


def default_a2a_factory(record: AgentRecord, guard: UrlGuard) -> Agent:
    """An ``A2AAgent`` for ``record`` with its cached card, connecting through ``guard``.
    The agent's timeout is applied by the :class:`Registry` (the cancellation it causes
    makes the client cancel the remote task)."""
    from podium.agents.a2a.client import A2AAgent  # the A2A client is only loaded when needed

    # one connection pool per agent, shared by its concurrent calls; closed by the Registry
    transport = guard.transport(shared=True)
    return A2AAgent(record.slug, record.url or "", card=record.card, transport=transport)


@dataclass(frozen=True)
class Resolved:
    """An agent found for a slug and organization, with what its calls need."""

    agent: Agent
    owner: str  # the organization it is registered in (``global`` for built-ins)
    kind: str
    record: AgentRecord | None  # None for a built-in (local) agent
    skills: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return self.record.id if self.record else f"local:{self.owner}/{self.agent.slug}"


def card_skills(card: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The ids and names of the skills a cached card advertises."""
    names: list[str] = []
    for skill in (card or {}).get("skills") or []:
        if isinstance(skill, Mapping):
            names.extend(str(skill[k]) for k in ("id", "name") if skill.get(k))
    return tuple(dict.fromkeys(names))


class Registry:
    """The :class:`~podium.agents.base.AgentResolver` of a worker process.

    Resolution: the organization's agent, else ``global``'s, else a built-in (``builtins``).
    Unknown slug: ``agent_not_found``; inactive agent: ``agent_disabled`` (not retryable).
    Records are cached for ``cache_seconds`` (and re-read at once after
    :func:`registry_changed` in this process); the routing policy likewise, unless a fixed
    ``policy`` is given. The agent returned by :meth:`resolve` looks the slug up when it is
    invoked, so that the lookup never blocks the event loop.

    Before each call the routing policy is checked (:class:`~podium.agents.policy.routing.Router`).
    ``concurrency_limit`` is enforced with a semaphore **per worker process** (N workers may
    run N x limit calls at once); ``timeout_seconds`` bounds the agent call itself (waiting
    for a slot is not counted; the step's own timeout bounds everything). The outcome of
    calls is written to the record's health, at most once per ``health_seconds`` per agent
    unless it changes from success to error or back.

    Arguments: ``builtins`` resolves slugs no record names (default: the demo agents);
    ``a2a_factory`` builds ``a2a`` clients (default :func:`default_a2a_factory`);
    ``policy`` is a fixed policy, a :class:`~podium.agents.policy.routing.PolicySource`, or None
    for the stored ``routing-policy`` document; ``url_guard`` defaults to
    :meth:`UrlGuard.from_env`; ``router`` (tests) replaces the router built from ``policy``.
    Call :meth:`aclose` when done (it closes the A2A connection pools).
    """

    def __init__(
        self,
        store: SqlStore,
        *,
        builtins: AgentResolver | None = None,
        a2a_factory: A2AFactory | None = None,
        policy: RoutingPolicy | PolicySource | None = None,
        url_guard: UrlGuard | None = None,
        cache_seconds: float = 5.0,
        health_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        router: Router | None = None,
    ) -> None:
        self.store = store
        self.builtins = builtins if builtins is not None else LocalAgents()
        self.url_guard = url_guard or UrlGuard.from_env()
        self._a2a_factory = a2a_factory or default_a2a_factory
        self._ttl = cache_seconds
        self._health_seconds = health_seconds
        self._clock = clock
        if router is None:
            source: PolicySource
            if isinstance(policy, RoutingPolicy):
                source = StaticPolicy(policy)
            elif policy is None:
                source = StoredPolicy(self._read_policy, ttl=cache_seconds, clock=clock)
            else:
                source = policy
            router = Router(source)
        self.router = router
        self._records: dict[tuple[str, str], tuple[float, AgentRecord | None]] = {}
        self._loading: dict[tuple[str, str], asyncio.Future[AgentRecord | None]] = {}
        self._generation = 0
        self._agents: dict[str, tuple[Any, Agent]] = {}  # record id -> (version, agent)
        self._slots: dict[str, tuple[int, asyncio.Semaphore]] = {}
        self._health: dict[str, tuple[bool, float]] = {}  # key -> (ok, when written)
        self._background: set[asyncio.Task[None]] = set()
        _live.add(self)

    # -- AgentResolver ------------------------------------------------------------------------

    def resolve(self, slug: str, organization_slug: str) -> Agent:
        """An agent that, when invoked, resolves ``slug`` for ``organization_slug`` and makes
        the routed, limited call (errors are raised by ``invoke``)."""
        return RegistryAgent(self, slug, organization_slug)

    def invalidate(self) -> None:
        """Forget cached records and the cached policy (see :func:`registry_changed`)."""
        self._generation += 1
        self._records.clear()
        self.router.source.invalidate()

    async def aclose(self) -> None:
        """Wait for pending health writes and close the agents' clients."""
        await self.drain()
        for _, agent in list(self._agents.values()):
            await _close(agent)
        self._agents.clear()
        _live.discard(self)

    async def drain(self) -> None:
        """Wait until the health writes started so far are done."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    # -- lookup -------------------------------------------------------------------------------

    async def find(self, slug: str, organization: str) -> Resolved:
        """The agent ``slug`` for ``organization``; :class:`AgentError` ``agent_not_found``
        or ``agent_disabled``."""
        record = await self._record(organization, slug)
        if record is None:
            try:
                agent = self.builtins.resolve(slug, organization)
            except AgentError as exc:
                raise AgentError(
                    ErrorCode.AGENT_NOT_FOUND,
                    f"agent {slug!r} is not registered for organization {organization!r}, "
                    "in global, or as a built-in agent",
                    retryable=False,
                    details={"agent": slug, "organization": organization},
                ) from exc
            return Resolved(agent, GLOBAL, agent.kind, None)
        if not record.active:
            raise AgentError(
                ErrorCode.AGENT_DISABLED,
                f"agent {slug!r} of organization {record.organization_slug!r} is disabled",
                retryable=False,
                details={"agent": slug, "organization": record.organization_slug},
            )
        return Resolved(
            self._agent_for(record),
            record.organization_slug,
            record.kind,
            record,
            card_skills(record.card),
        )

    async def _record(self, organization: str, slug: str) -> AgentRecord | None:
        key = (organization, slug)
        cached = self._records.get(key)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        loading = self._loading.get(key)
        if loading is None:
            loading = asyncio.ensure_future(self._load(key, self._generation))
            self._loading[key] = loading
            loading.add_done_callback(lambda _: self._loading.pop(key, None))
        try:
            # shielded: one caller's cancellation must not fail the others waiting
            return await asyncio.shield(loading)
        except PodiumError as exc:
            raise AgentError(
                ErrorCode.AGENT_UNREACHABLE,
                f"the agent registry could not be read: {exc.message}",
                retryable=True,
            ) from exc

    async def _load(self, key: tuple[str, str], generation: int) -> AgentRecord | None:
        record = await self.store.call(self.store.find_agent, *key)
        if generation == self._generation:  # not invalidated meanwhile
            self._records[key] = (self._clock() + self._ttl, record)
        return record

    def _agent_for(self, record: AgentRecord) -> Agent:
        """The callable agent of ``record``, rebuilt when the record changes."""
        version = (record.updated_at, record.url, record.target, record.timeout_seconds)
        known = self._agents.get(record.id)
        if known is not None and known[0] == version:
            return known[1]
        agent: Agent
        if record.kind == "python":
            agent = PythonAgent.from_target(record.slug, record.target or "")
        elif record.kind == "a2a":
            agent = self._a2a_factory(record, self.url_guard)
        else:
            raise AgentError(
                ErrorCode.AGENT_NOT_FOUND,
                f"agent {record.slug!r} has unknown kind {record.kind!r}",
                retryable=False,
            )
        self._agents[record.id] = (version, agent)
        if known is not None:
            self._spawn(_close(known[1]))
        return agent

    async def _read_policy(self) -> Mapping[str, Any] | None:
        return await self.store.call(self.store.get_config, POLICY_DOCUMENT)

    # -- the call -----------------------------------------------------------------------------

    async def call(
        self, slug: str, organization: str, input: Any, context: AgentContext
    ) -> dict[str, Any]:
        """Resolve, check the routing policy, then call within the agent's limits."""
        with log_fields(agent=slug):
            return await self._call(slug, organization, input, context)

    async def _call(
        self, slug: str, organization: str, input: Any, context: AgentContext
    ) -> dict[str, Any]:
        found = await self.find(slug, organization)
        await self.router.check(
            Call(
                organization=organization,
                agent=slug,
                owner=found.owner,
                kind=found.kind,
                skills=found.skills,
                run_id=context.run_id,
                step_id=context.step_id,
            ),
            input,
        )
        timeout = found.record.timeout_seconds if found.record else None
        async with self._slot(found):
            try:
                async with asyncio.timeout(timeout):
                    result = await found.agent.invoke(input, context)
            except TimeoutError:
                error = AgentError(
                    ErrorCode.AGENT_TIMEOUT,
                    f"agent {slug!r} did not answer within its timeout of {timeout:g} s",
                    details={"timeoutSeconds": timeout},
                )
                self._note_health(found, error)
                raise error from None
            except AgentError as exc:
                error = _refused(exc) or exc
                self._note_health(found, error)
                if error is exc:
                    raise
                raise error from exc
        self._note_health(found, None)
        return result

    @contextlib.asynccontextmanager
    async def _slot(self, found: Resolved) -> AsyncIterator[None]:
        limit = found.record.concurrency_limit if found.record else None
        if not limit:
            yield
            return
        known = self._slots.get(found.key)
        if known is None or known[0] != limit:
            known = (limit, asyncio.Semaphore(limit))
            self._slots[found.key] = known
        async with known[1]:
            yield

    def _note_health(self, found: Resolved, error: AgentError | None) -> None:
        if found.record is None:
            return
        ok = error is None
        now = self._clock()
        last = self._health.get(found.key)
        if last is not None and last[0] == ok and now - last[1] < self._health_seconds:
            return
        self._health[found.key] = (ok, now)
        payload = None if error is None else error.to_step_error().to_dict()
        self._spawn(self._write_health(found.record.id, payload))

    async def _write_health(self, agent_id: str, error: dict[str, Any] | None) -> None:
        try:
            await self.store.call(self.store.record_agent_health, agent_id, error=error)
        except Exception as exc:  # health is advisory; a step never fails because of it
            log.warning("could not record the health of agent %s: %s", agent_id, exc)

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


class RegistryAgent:
    """The agent :meth:`Registry.resolve` returns: resolves and routes on every call."""

    kind = "registry"

    def __init__(self, registry: Registry, slug: str, organization: str) -> None:
        self.slug = slug
        self.organization = organization
        self._registry = registry

    async def invoke(self, input: Any, context: AgentContext) -> dict[str, Any]:
        return await self._registry.call(self.slug, self.organization, input, context)


def _refused(exc: AgentError) -> AgentError | None:
    """A non-retryable error for a call the URL guard refused at connect time."""
    refusal = refusal_in(exc)
    if refusal is None:
        return None
    return AgentError(
        ErrorCode.AGENT_UNREACHABLE,
        str(refusal),
        retryable=False,
        details={**exc.details, "resolvedAddress": refusal.address, "reason": refusal.reason},
    )


async def _close(agent: Agent) -> None:
    """Release what an agent holds: its ``aclose``, or its guarded transport's pool."""
    transport = getattr(agent, "transport", None)
    closers = [getattr(agent, "aclose", None)]
    if isinstance(transport, GuardedTransport):
        closers.append(transport.close)
    for close in closers:
        if close is not None:
            with contextlib.suppress(Exception):
                await close()
