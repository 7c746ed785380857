"""Runbook section 4: agent invocation errors.

The checks read the steps of *active* definitions (what new runs will call), the agent
registry, the stored routing policy, and probe every active A2A agent's card now, in
parallel with a short timeout.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterator
from typing import Any

from podium.agents.a2a.card import fetch_card
from podium.agents.a2a.transport import HttpOptions
from podium.agents.base import AgentError
from podium.agents.policy.routing import Call, RoutingPolicy
from podium.agents.registry.resolver import LocalAgents, card_skills
from podium.doctor.facts import Facts
from podium.doctor.model import Finding, Fix, Options, age, check
from podium.errors import PodiumError
from podium.net.urlguard import UrlGuard
from podium.storage.agents import AgentRecord
from podium.storage.diagnostics import ActiveDefinition

SECTION = 4
GLOBAL = "global"


def _agent_steps(definition: ActiveDefinition) -> Iterator[tuple[str, str, Any]]:
    """``(step id, agent slug, declared input)`` of the agent steps of a definition document."""
    body = (
        definition.document.get("orchestration") if isinstance(definition.document, dict) else None
    )
    steps = body.get("steps") if isinstance(body, dict) else None
    for step in steps or []:
        if isinstance(step, dict) and step.get("agent") and step.get("type", "agent") == "agent":
            yield str(step.get("id")), str(step["agent"]), step.get("input")


def _lookup(facts: Facts, organization: str, slug: str) -> AgentRecord | None:
    """The registry's record for ``slug`` as a run of ``organization`` would resolve it."""
    records = {(a.organization_slug, a.slug): a for a in facts.agents}
    return records.get((organization, slug)) or records.get((GLOBAL, slug))


@check("agents.unknown-slug", SECTION)
def unknown_slug(facts: Facts, options: Options) -> list[Finding]:
    """Steps of active definitions naming an agent the registry does not know, or has
    disabled."""
    builtins = set(LocalAgents().slugs())
    out: list[Finding] = []
    for definition in facts.active_definitions:
        for step_id, slug, _ in _agent_steps(definition):
            record = _lookup(facts, definition.organization_slug, slug)
            label = f"{definition.name}@{definition.version}"
            evidence = {
                "definition": label,
                "organization": definition.organization_slug,
                "step": step_id,
                "agent": slug,
            }
            if record is None and slug not in builtins:
                out.append(
                    Finding(
                        check="agents.unknown-slug",
                        section=SECTION,
                        severity="error",
                        summary=f"step {step_id} of {label} names agent {slug!r}, "
                        "which is not registered",
                        evidence=evidence,
                        fix=Fix(
                            command=f"podium agents add {slug} --url URL (or --target "
                            f"MODULE:FUNCTION), or change step {step_id} of {label}",
                            api="POST /api/admin/agents",
                        ),
                        organization=definition.organization_slug,
                    )
                )
            elif record is not None and not record.active:
                out.append(
                    Finding(
                        check="agents.unknown-slug",
                        section=SECTION,
                        severity="error",
                        summary=f"step {step_id} of {label} names agent {slug!r}, "
                        "which is disabled",
                        evidence={**evidence, "agentOrganization": record.organization_slug},
                        fix=Fix(
                            command=f"podium agents enable {slug}",
                            api=f'PATCH /api/admin/agents/{slug} {{"active": true}}',
                        ),
                        organization=definition.organization_slug,
                    )
                )
    return out


@check("agents.routing-denied", SECTION)
def routing_denied(facts: Facts, options: Options) -> list[Finding]:
    """Routing rules that deny a step of an active definition (before any input is seen:
    rules on input patterns are judged on the declared input)."""
    try:
        policy = RoutingPolicy.parse(facts.routing_policy)
    except PodiumError:
        return []  # an invalid stored policy is refused at PUT; nothing to judge here
    out: list[Finding] = []
    for definition in facts.active_definitions:
        for step_id, slug, declared in _agent_steps(definition):
            record = _lookup(facts, definition.organization_slug, slug)
            call = Call(
                organization=definition.organization_slug,
                agent=slug,
                owner=record.organization_slug if record else GLOBAL,
                kind=record.kind if record else "python",
                skills=card_skills(record.card) if record else (),
                step_id=step_id,
            )
            decision = policy.decide(call, declared)
            if decision.allowed:
                continue
            label = f"{definition.name}@{definition.version}"
            out.append(
                Finding(
                    check="agents.routing-denied",
                    section=SECTION,
                    severity="error",
                    summary=f'routing rule "{decision.rule}" denies step {step_id} of {label} '
                    f"(agent {slug})",
                    evidence={
                        "definition": label,
                        "organization": definition.organization_slug,
                        "step": step_id,
                        "agent": slug,
                        "rule": decision.rule,
                        "reason": decision.reason,
                    },
                    fix=Fix(
                        command=f'edit rule "{decision.rule}" of the routing policy, or retry '
                        f"with another agent: podium retry RUN --step {step_id} --agent "
                        f"{step_id}=SLUG",
                        api="PUT /api/admin/routing-policy",
                    ),
                    organization=definition.organization_slug,
                )
            )
    return out


@check("agents.failing", SECTION)
def failing(facts: Facts, options: Options) -> list[Finding]:
    """Active agents whose last call failed (no success since)."""
    out: list[Finding] = []
    for agent in facts.agents:
        if not agent.active or agent.last_error_at is None:
            continue
        if agent.last_success_at is not None and agent.last_success_at >= agent.last_error_at:
            continue
        error = agent.last_error or {}
        out.append(
            Finding(
                check="agents.failing",
                section=SECTION,
                severity="warning",
                summary=f"agent {agent.slug}: its last call failed ({error.get('code', 'error')})",
                evidence={
                    "agent": agent.slug,
                    "organization": agent.organization_slug,
                    "lastError": error,
                    "lastErrorSecondsAgo": age(options.now, agent.last_error_at),
                    "lastSuccessAt": agent.last_success_at.isoformat()
                    if agent.last_success_at
                    else None,
                },
                fix=Fix(
                    command=f"podium agents show {agent.slug}",
                    api=f"GET /api/admin/agents/{agent.slug}",
                ),
                organization=agent.organization_slug,
            )
        )
    return out


async def _probe_all(urls: dict[str, str], options: Options) -> dict[str, AgentError | None]:
    guard = UrlGuard.from_env(options.environ, subject="AGENT")
    transport = guard.transport()
    http = HttpOptions(
        transport=transport,
        connect_timeout=options.probe_timeout,
        request_timeout=options.probe_timeout,
    )

    async def one(url: str) -> AgentError | None:
        try:
            await asyncio.wait_for(fetch_card(url, http=http), options.probe_timeout + 1.0)
        except AgentError as exc:
            return exc
        except TimeoutError:
            return AgentError("agent_unreachable", f"no card within {options.probe_timeout}s")
        return None

    try:
        results = await asyncio.gather(*(one(u) for u in urls.values()))
    finally:
        await transport.aclose()
    return dict(zip(urls, results, strict=True))


def probe_cards(urls: dict[str, str], options: Options) -> dict[str, AgentError | None]:
    """Fetch every card at once (in a thread of its own, so callers inside an event loop
    can use it too); the error of each that failed, None for those that answered."""
    if not urls:
        return {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _probe_all(urls, options)).result()


@check("agents.card-unreachable", SECTION)
def card_unreachable(facts: Facts, options: Options) -> list[Finding]:
    """Active A2A agents whose card cannot be fetched now."""
    a2a = [a for a in facts.agents if a.kind == "a2a" and a.active and a.url]
    results = probe_cards({a.id: a.url or "" for a in a2a}, options)
    out: list[Finding] = []
    for agent in a2a:
        error = results.get(agent.id)
        if error is None:
            continue
        out.append(
            Finding(
                check="agents.card-unreachable",
                section=SECTION,
                severity="warning",
                summary=f"agent {agent.slug}: its card cannot be fetched ({error.code})",
                evidence={
                    "agent": agent.slug,
                    "organization": agent.organization_slug,
                    "url": agent.url,
                    "error": {"code": str(error.code), "message": error.message},
                    "timeoutSeconds": options.probe_timeout,
                },
                fix=Fix(
                    command=f"podium agents refresh {agent.slug} (once the agent is back), "
                    f"or podium agents disable {agent.slug}",
                    api=f"POST /api/admin/agents/{agent.slug}/refresh",
                ),
                organization=agent.organization_slug,
            )
        )
    return out
