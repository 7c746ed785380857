"""Routes: the agent registry (``/api/admin/agents``) and the routing policy
(``/api/admin/routing-policy``). Any role reads; changes need ``admin``.

Registration checks come from ``app.state.agent_checks`` when set (tests, embedding), else
from the environment (:meth:`AgentChecks.from_env`, API callers untrusted).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response

from podium.agents.policy.routing import PolicyDocument
from podium.agents.registry.admission import SLUG_PATTERN, AgentChecks, AgentRegistration
from podium.api.deps import ActorDep, StoreDep
from podium.api.openapi import errors
from podium.api.outbound import OutboundSlots
from podium.service import agents as service
from podium.service.agent_views import AgentChanges, AgentDetail, AgentView
from podium.service.views import Page

router = APIRouter(prefix="/api/admin", tags=["agents"])


def get_agent_checks(request: Request) -> AgentChecks:
    """The registration checks of this app (built from the environment once)."""
    checks: AgentChecks | None = getattr(request.app.state, "agent_checks", None)
    if checks is None:
        checks = AgentChecks.from_env(trusted=False)
        request.app.state.agent_checks = checks
    return checks


def get_outbound_slots(
    request: Request, checks: Annotated[AgentChecks, Depends(get_agent_checks)]
) -> OutboundSlots:
    """The per-organization slots for card fetches (T1), made once per app."""
    slots: OutboundSlots | None = getattr(request.app.state, "outbound_slots", None)
    if slots is None:
        slots = OutboundSlots(checks.card_concurrency, retry_after=checks.card_timeout)
        request.app.state.outbound_slots = slots
    return slots


ChecksDep = Annotated[AgentChecks, Depends(get_agent_checks)]
SlotsDep = Annotated[OutboundSlots, Depends(get_outbound_slots)]
Slug = Annotated[str, Path(pattern=SLUG_PATTERN, description="The agent's slug.")]


@router.get("/agents", response_model=Page[AgentView], summary="List agents", responses=errors(503))
def list_agents(store: StoreDep, actor: ActorDep) -> Page[AgentView]:
    """The organization's agents, ``global``'s and the built-in ones, with health and card."""
    return Page[AgentView](items=service.list_agents(store, actor))


@router.post(
    "/agents",
    status_code=201,
    response_model=AgentDetail,
    summary="Register an agent",
    responses=errors(403, 409, 422, 503),
)
async def register_agent(
    body: AgentRegistration, store: StoreDep, actor: ActorDep, checks: ChecksDep, slots: SlotsDep
) -> AgentDetail:
    """Register an agent; an a2a agent's URL is checked and its card fetched (within
    ``PODIUM_AGENT_CARD_TIMEOUT_SECONDS``, a few per organization at a time: 429 beyond)."""
    return await slots.run(actor.organization, service.register, store, actor, body, checks)


@router.get(
    "/agents/{slug}",
    response_model=AgentDetail,
    summary="Show an agent",
    responses=errors(404, 503),
)
def show_agent(slug: Slug, store: StoreDep, actor: ActorDep) -> AgentDetail:
    """The agent a step naming ``slug`` gets: kind, url or target, active, card, health."""
    return service.show(store, actor, slug)


@router.patch(
    "/agents/{slug}",
    response_model=AgentDetail,
    summary="Change an agent",
    responses=errors(403, 404, 422, 503),
)
async def update_agent(
    slug: Slug,
    body: AgentChanges,
    store: StoreDep,
    actor: ActorDep,
    checks: ChecksDep,
    slots: SlotsDep,
) -> AgentDetail:
    return await slots.run(actor.organization, service.update, store, actor, slug, body, checks)


@router.delete(
    "/agents/{slug}",
    status_code=204,
    response_class=Response,
    summary="Remove an agent",
    responses=errors(403, 404, 503),
)
def remove_agent(slug: Slug, store: StoreDep, actor: ActorDep) -> Response:
    service.remove(store, actor, slug)
    return Response(status_code=204)


@router.post(
    "/agents/{slug}/refresh",
    response_model=AgentDetail,
    summary="Fetch an agent's card again",
    responses=errors(403, 404, 422, 503),
)
async def refresh_agent(
    slug: Slug, store: StoreDep, actor: ActorDep, checks: ChecksDep, slots: SlotsDep
) -> AgentDetail:
    """Fetch the agent's card again."""
    return await slots.run(actor.organization, service.refresh, store, actor, slug, checks)


@router.get(
    "/routing-policy",
    response_model=PolicyDocument,
    response_model_exclude_none=True,
    summary="The routing policy",
    responses=errors(503),
)
def get_routing_policy(store: StoreDep, actor: ActorDep) -> PolicyDocument:
    return service.get_policy(store, actor)


@router.put(
    "/routing-policy",
    response_model=PolicyDocument,
    response_model_exclude_none=True,
    summary="Replace the routing policy",
    responses=errors(403, 422, 503),
)
def put_routing_policy(body: PolicyDocument, store: StoreDep, actor: ActorDep) -> PolicyDocument:
    """Replace the routing policy; every problem of the document is answered at once (422)."""
    return service.put_policy(store, actor, body.model_dump(mode="json", exclude_none=True))
