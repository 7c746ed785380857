"""A2A agents through the registry, against the demo A2A agents on loopback: registration
fetches the card through the URL guard, a worker calls the agent with it, skills from the card
drive routing, and a guard that does not allow loopback refuses the call at connect time."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from podium.agents.a2a.demo import demo_server
from podium.agents.policy.routing import RoutingPolicy
from podium.agents.registry.admission import AgentChecks, AgentRegistration
from podium.agents.registry.resolver import Registry
from podium.cli.agents import register_demo_agents
from podium.client.local import LocalBackend
from podium.net.urlguard import UrlGuard, UrlNotAllowed
from podium.service import agents as service
from podium.service.actors import Actor
from podium.settings import Settings
from podium.storage.store import SqlStore
from tests.registry.conftest import context
from tests.support import fast_settings, run_to_end

ACME = Actor.local("acme")
LOOPBACK = UrlGuard.allowing_loopback()
DOC = """
metadata: {name: a2a-single, version: 1.0.0}
orchestration:
  error_handling: {on_step_failure: {maxAttempts: 3, initialDelayMs: 10}}
  steps:
    - {id: only, agent: summarizer, input: {text: "One. Two. Three.", sentences: 1}}
"""


@pytest.fixture(scope="module")
def demo() -> Iterator[dict[str, str]]:
    server = demo_server(port=0).start()
    try:
        yield server.urls
    finally:
        server.stop()


def test_registration_refuses_loopback_unless_allowed(
    store: SqlStore, demo: dict[str, str]
) -> None:
    """N1: the demo agents live on loopback; the default guard refuses them."""
    strict = AgentChecks(url_guard=UrlGuard(), python_modules=None)
    request = AgentRegistration(slug="summarizer", url=demo["summarizer"])
    with pytest.raises(UrlNotAllowed, match=r"127\.0\.0\.1, a loopback address"):
        service.register(store, ACME, request, strict)
    detail = service.register(store, ACME, request, AgentChecks(url_guard=LOOPBACK))
    assert detail.card is not None
    assert detail.card.skills[0].id == "summarize"


def test_the_demo_command_registers_every_demo_agent(store: SqlStore, demo: dict[str, str]) -> None:
    checks = AgentChecks(url_guard=LOOPBACK, python_modules=None)
    backend = LocalBackend(store, Settings.from_env(organization="acme"), agent_checks=checks)
    first = register_demo_agents(backend, demo)
    assert sorted(a.slug for a in first) == sorted(demo)
    assert {a.organizationSlug for a in first} == {"acme"}
    again = register_demo_agents(backend, demo)  # idempotent
    assert [a.slug for a in again] == [a.slug for a in first]
    translator = store.get_agent("acme", "translator")
    assert translator.card is not None
    assert translator.card["protocolVersion"].startswith("0.3")


async def test_a_worker_calls_a_registered_a2a_agent(
    store: SqlStore, db_url: str, demo: dict[str, str]
) -> None:
    service.register(
        store,
        ACME,
        AgentRegistration(slug="summarizer", url=demo["summarizer"]),
        AgentChecks(url_guard=LOOPBACK),
    )
    r = Registry(store, url_guard=LOOPBACK, policy=RoutingPolicy.allow_all())
    run = await run_to_end(store, fast_settings(db_url), DOC, agents=r)  # type: ignore[arg-type]
    assert run.status == "completed", store.steps_of(run.id)[0].error
    (step,) = store.steps_of(run.id)
    assert step.output["agent"]["slug"] == "summarizer"
    await r.aclose()
    assert store.get_agent("acme", "summarizer").last_success_at is not None


async def test_routing_by_skill_uses_the_cached_card(
    store: SqlStore, db_url: str, demo: dict[str, str]
) -> None:
    service.register(
        store,
        ACME,
        AgentRegistration(slug="summarizer", url=demo["summarizer"]),
        AgentChecks(url_guard=LOOPBACK),
    )
    policy = RoutingPolicy.parse(
        {"rules": [{"name": "no-summaries", "effect": "deny", "skills": ["summarize"]}]}
    )
    r = Registry(store, url_guard=LOOPBACK, policy=policy)
    run = await run_to_end(store, fast_settings(db_url), DOC, agents=r)  # type: ignore[arg-type]
    (step,) = store.steps_of(run.id)
    assert step.error is not None
    assert step.error["code"] == "routing_showstopper"
    assert step.error["message"] == (
        'denied by rule "no-summaries" (organization "acme", agent "summarizer", skill "summarize")'
    )


async def test_a_worker_whose_guard_refuses_loopback_fails_the_step_at_connect_time(
    store: SqlStore, db_url: str, demo: dict[str, str]
) -> None:
    """N1: at connect time. Registered while loopback was allowed; the worker's guard does
    not allow it: the call is refused before a request is sent, not retried."""
    service.register(
        store,
        ACME,
        AgentRegistration(slug="summarizer", url=demo["summarizer"]),
        AgentChecks(url_guard=LOOPBACK),
    )
    r = Registry(store, url_guard=UrlGuard(), policy=RoutingPolicy.allow_all())
    run = await run_to_end(store, fast_settings(db_url), DOC, agents=r)  # type: ignore[arg-type]
    assert run.status == "failed"
    (step,) = store.steps_of(run.id)
    assert step.error is not None
    assert (step.error["code"], step.error["retryable"]) == ("agent_unreachable", False)
    assert "127.0.0.1" in step.error["message"]
    assert "loopback" in step.error["message"]
    assert step.error["details"]["resolvedAddress"] == "127.0.0.1"
    assert step.attempt == 1
    await r.aclose()
    health = store.get_agent("acme", "summarizer").last_error
    assert health is not None
    assert health["code"] == "agent_unreachable"


async def test_concurrent_calls_to_a2a_agents_share_a_connection_pool_safely(
    store: SqlStore, demo: dict[str, str]
) -> None:
    """A call that ends must not close connections other calls still use."""
    checks = AgentChecks(url_guard=LOOPBACK)
    for slug in ("slow", "summarizer"):
        service.register(store, ACME, AgentRegistration(slug=slug, url=demo[slug]), checks)
    r = Registry(store, url_guard=LOOPBACK, policy=RoutingPolicy.allow_all())
    slow = [
        r.call(
            "slow",
            "acme",
            {"text": "x", "seconds": 0.5, "interval": 0.1},
            context(step_id=f"slow{i}"),
        )
        for i in range(3)
    ]
    quick = [
        r.call("summarizer", "acme", {"text": "A. B."}, context(step_id=f"quick{i}"))
        for i in range(3)
    ]
    results = await asyncio.gather(*slow, *quick)
    assert all(result["success"] for result in results)
    await r.aclose()
