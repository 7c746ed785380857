"""The agent registry and the routing policy (spec section 7), scoped by :class:`Actor`.

Reading needs any role; changes need ``admin``. An actor sees its organization's agents,
``global``'s and the built-in demo agents; another organization's agent is "not found".
Agents of ``global`` and the routing policy (one document for the whole installation) are
changed only by actors of the ``global`` organization or by the local operator (an actor
without an API key).

Every change tells this process's registries at once (:func:`registry_changed`); other
processes see it within their cache time (a few seconds).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from podium.agents.demo import BUILTIN_AGENTS
from podium.agents.policy.routing import POLICY_DOCUMENT, PolicyDocument, RoutingPolicy
from podium.agents.registry.admission import AgentCardUnavailable, AgentChecks, AgentRegistration
from podium.agents.registry.resolver import registry_changed
from podium.errors import Forbidden, InvalidInput, Issue, NotFound
from podium.net.urlguard import UrlNotAllowed
from podium.service import policy_scope
from podium.service.actors import Actor
from podium.service.agent_views import AgentChanges, AgentDetail, AgentView
from podium.storage.agents import AgentRecord
from podium.storage.store import SqlStore

# -- reading ----------------------------------------------------------------------------------


def list_agents(store: SqlStore, actor: Actor) -> list[AgentView]:
    """The actor's organization's agents, ``global``'s, and the built-in agents that no
    registered agent of the same slug shadows."""
    records = store.list_agents(actor.organization)
    views = [AgentView.of(r) for r in records]
    taken = {r.slug for r in records}
    views += [
        AgentView.builtin_agent(slug, fn)
        for slug, fn in sorted(BUILTIN_AGENTS.items())
        if slug not in taken
    ]
    return views


def show(store: SqlStore, actor: Actor, slug: str) -> AgentDetail:
    """The agent a step naming ``slug`` gets in the actor's organization (its own, else
    ``global``'s, else a built-in); :class:`NotFound` otherwise."""
    record = store.find_agent(actor.organization, slug)
    if record is not None:
        return AgentDetail.of(record)
    fn = BUILTIN_AGENTS.get(slug)
    if fn is None:
        raise NotFound(f"agent {slug} not found in organization {actor.organization} or global")
    return AgentDetail.of_view(AgentView.builtin_agent(slug, fn))


# -- changing ---------------------------------------------------------------------------------


def register(
    store: SqlStore, actor: Actor, request: AgentRegistration, checks: AgentChecks
) -> AgentDetail:
    """Register an agent in the actor's organization. An ``a2a`` agent's URL is checked
    (N1) and its card fetched now; a ``python`` target must import. :class:`InvalidInput`,
    :class:`~podium.net.urlguard.UrlNotAllowed`, :class:`AgentCardUnavailable`, or
    :class:`~podium.errors.Conflict` when the slug is taken in the organization."""
    actor.require("admin", "register agents")
    issues = request.issues()
    if issues:
        raise InvalidInput(f"invalid agent {request.slug}", issues)
    kind = request.resolved_kind
    card = None
    if kind == "a2a":
        assert request.url is not None
        card = checks.card_for(request.url)
    else:
        checks.check_target(request.target or "")
    record = store.add_agent(
        organization=actor.organization,
        slug=request.slug,
        kind=kind,
        url=request.url,
        target=request.target,
        active=request.active,
        concurrency_limit=request.concurrencyLimit,
        timeout_seconds=request.timeoutSeconds,
        card=card,
    )
    registry_changed()
    return AgentDetail.of(record)


def update(
    store: SqlStore, actor: Actor, slug: str, changes: AgentChanges, checks: AgentChecks
) -> AgentDetail:
    """Change the fields given in ``changes``; a new URL is checked and its card fetched."""
    record = _own(store, actor, slug, "change agents")
    given = changes.model_fields_set
    issues = []
    for name, kind in (("url", "a2a"), ("target", "python")):
        if name not in given:
            continue
        if record.kind != kind:
            issues.append(Issue(name, f"a {record.kind} agent has no {name}"))
        elif getattr(changes, name) is None:
            issues.append(Issue(name, "cannot be removed"))
    if "active" in given and changes.active is None:
        issues.append(Issue("active", "must be true or false"))
    if issues:
        raise InvalidInput("invalid agent changes", issues)
    fields: dict[str, Any] = {}
    card = None
    if "url" in given and changes.url != record.url:
        assert changes.url is not None
        card = checks.card_for(changes.url)
        fields["url"] = changes.url
    if "target" in given and changes.target != record.target:
        checks.check_target(changes.target or "")
        fields["target"] = changes.target
    if "active" in given:
        fields["active"] = changes.active
    if "concurrencyLimit" in given:
        fields["concurrency_limit"] = changes.concurrencyLimit
    if "timeoutSeconds" in given:
        fields["timeout_seconds"] = changes.timeoutSeconds
    if fields:
        store.update_agent(record.organization_slug, slug, **fields)
    if card is not None:
        store.record_agent_card(record.id, card)
    registry_changed()
    return AgentDetail.of(store.get_agent(record.organization_slug, slug))


def remove(store: SqlStore, actor: Actor, slug: str) -> None:
    """Delete the agent from the registry (steps naming it then fail ``agent_not_found``,
    unless ``global`` or a built-in agent has the same slug)."""
    record = _own(store, actor, slug, "remove agents")
    store.remove_agent(record.organization_slug, slug)
    registry_changed()


def refresh(store: SqlStore, actor: Actor, slug: str, checks: AgentChecks) -> AgentDetail:
    """Fetch the ``a2a`` agent's card again and cache it. A failure is recorded in the
    agent's health and answered with :class:`AgentCardUnavailable`."""
    record = _own(store, actor, slug, "refresh agents")
    if record.kind != "a2a":
        raise InvalidInput(
            f"agent {slug} is a {record.kind} agent; only a2a agents have a card to refresh"
        )
    try:
        card = checks.card_for(record.url or "")
    except (AgentCardUnavailable, UrlNotAllowed) as exc:
        store.record_agent_health(
            record.id, error={"code": exc.code, "message": exc.message, "retryable": True}
        )
        raise
    store.record_agent_card(record.id, card)
    registry_changed()
    return AgentDetail.of(store.get_agent(record.organization_slug, slug))


# -- the routing policy -----------------------------------------------------------------------


def get_policy(store: SqlStore, actor: Actor) -> PolicyDocument:
    """The routing policy in force (an empty, allow-all one when none was stored)."""
    actor.require("viewer", "read the routing policy")
    document = RoutingPolicy.parse(store.get_config(POLICY_DOCUMENT)).document
    return policy_scope.visible_part(document, actor)


def put_policy(store: SqlStore, actor: Actor, document: Mapping[str, Any] | str) -> PolicyDocument:
    """Validate and store a new routing policy (every problem in one :class:`InvalidInput`);
    workers apply it within their cache time."""
    actor.require("admin", "change the routing policy")
    if not policy_scope.sees_everything(actor):
        # an organization's admin replaces only its own entries (service.policy_scope)
        if not isinstance(document, Mapping):
            document = RoutingPolicy.parse(document).to_document()
        current = RoutingPolicy.parse(store.get_config(POLICY_DOCUMENT)).document
        document = policy_scope.merged_document(current, document, actor)
    policy = RoutingPolicy.parse(document)
    store.put_config(POLICY_DOCUMENT, policy.to_document(), actor=actor.name)
    registry_changed()
    return policy_scope.visible_part(policy.document, actor)


# -- helpers ----------------------------------------------------------------------------------


def _own(store: SqlStore, actor: Actor, slug: str, action: str) -> AgentRecord:
    """The registered agent the actor may change: its organization's, or ``global``'s for
    a global or local actor. :class:`NotFound` / :class:`Forbidden` otherwise."""
    actor.require("admin", action)
    record = store.find_agent(actor.organization, slug)
    if record is None:
        what = " (a built-in agent, which cannot be changed)" if slug in BUILTIN_AGENTS else ""
        raise NotFound(f"agent {slug} not found in organization {actor.organization}{what}")
    if record.organization_slug != actor.organization and actor.key_id is not None:
        raise Forbidden(
            f"agent {slug} belongs to the global organization; only its admins can change it"
        )
    return record
