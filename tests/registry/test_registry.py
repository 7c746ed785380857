"""The database-backed registry: resolution order and errors (also through a real worker),
caching, per-agent concurrency limit and timeout, health, routing before every call, and an
operator's ``agentOverrides`` swapping a step to a registry agent. Both databases."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from podium.agents.base import AgentError
from podium.agents.policy.routing import RoutingPolicy
from podium.agents.registry.resolver import LocalAgents, Registry, registry_changed
from podium.engine.launcher import launch
from podium.service import agents as service
from podium.service import recovery
from podium.service.actors import Actor
from podium.storage.store import SqlStore
from tests.registry.agents import GAUGE
from tests.registry.conftest import context
from tests.support import definition, fast_settings, run_to_end, running_worker, wait_terminal

T = "tests.registry.agents"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def registry(store: SqlStore, **kwargs: Any) -> Registry:
    kwargs.setdefault("policy", RoutingPolicy.allow_all())
    return Registry(store, **kwargs)


def one_step(agent: str, *, attempts: int = 3, input: str = "{text: hi}") -> str:
    return f"""
metadata: {{name: single, version: 1.0.0}}
orchestration:
  error_handling: {{on_step_failure: {{maxAttempts: {attempts}, initialDelayMs: 10}}}}
  steps:
    - {{id: only, agent: {agent}, input: {input}}}
"""


async def test_resolution_prefers_the_organization_then_global_then_built_ins(
    store: SqlStore,
) -> None:
    store.add_agent(organization="global", slug="tagger", kind="python", target=f"{T}:tag_global")
    store.add_agent(organization="acme", slug="tagger", kind="python", target=f"{T}:tag_acme")
    store.add_agent(organization="global", slug="echo", kind="python", target=f"{T}:shout")
    r = registry(store)
    acme = await r.find("tagger", "acme")
    assert (acme.owner, acme.kind) == ("acme", "python")
    assert (await r.call("tagger", "acme", 1, context()))["output"] == {"from": "acme", "input": 1}
    assert (await r.call("tagger", "globex", 2, context()))["output"]["from"] == "global"
    # a registered agent shadows the built-in of the same slug; other built-ins remain
    assert (await r.call("echo", "acme", {"text": "a"}, context()))["output"] == {"shouted": "A"}
    builtin = await r.find("uppercase", "acme")
    assert (builtin.owner, builtin.record) == ("global", None)
    assert (await r.call("uppercase", "acme", {"text": "b"}, context()))["output"] == {"text": "B"}


async def test_unknown_slug_is_agent_not_found_naming_slug_and_organization(
    store: SqlStore,
) -> None:
    store.add_agent(organization="globex", slug="theirs", kind="python", target=f"{T}:tag_acme")
    r = registry(store, builtins=LocalAgents(builtins=False))
    for slug in ("nope", "theirs"):  # another organization's agent is as good as unknown
        with pytest.raises(AgentError) as caught:
            await r.call(slug, "acme", None, context())
        assert caught.value.code == "agent_not_found"
        assert caught.value.retryable is False
        assert f"'{slug}'" in caught.value.message
        assert "'acme'" in caught.value.message


async def test_inactive_agent_is_agent_disabled_and_not_retryable(store: SqlStore) -> None:
    store.add_agent(
        organization="acme", slug="off", kind="python", target=f"{T}:shout", active=False
    )
    with pytest.raises(AgentError) as caught:
        await registry(store).call("off", "acme", None, context())
    assert (caught.value.code, caught.value.retryable) == ("agent_disabled", False)
    assert "'off'" in caught.value.message
    assert "disabled" in caught.value.message


async def test_unknown_and_disabled_agents_end_the_step_with_their_code_through_a_worker(
    store: SqlStore, db_url: str
) -> None:
    store.add_agent(
        organization="acme", slug="off", kind="python", target=f"{T}:shout", active=False
    )
    settings = fast_settings(db_url)
    r = registry(store)
    for slug, code in (("ghost", "agent_not_found"), ("off", "agent_disabled")):
        run = await run_to_end(store, settings, one_step(slug), agents=r)  # type: ignore[arg-type]
        assert run.status == "failed"
        (step,) = store.steps_of(run.id)
        assert step.error is not None
        assert (step.error["code"], step.error["retryable"]) == (code, False)
        assert step.attempt == 1  # not retried
    await r.aclose()


async def test_records_are_cached_until_they_expire_or_a_local_change_is_announced(
    store: SqlStore,
) -> None:
    clock = Clock()
    store.add_agent(organization="acme", slug="a", kind="python", target=f"{T}:tag_acme")
    r = registry(store, clock=clock, cache_seconds=5)
    assert (await r.call("a", "acme", 0, context()))["output"]["from"] == "acme"
    store.update_agent("acme", "a", target=f"{T}:tag_global")  # as another process would
    assert (await r.call("a", "acme", 0, context()))["output"]["from"] == "acme"  # cached
    clock.now += 5.1
    assert (await r.call("a", "acme", 0, context()))["output"]["from"] == "global"
    store.update_agent("acme", "a", active=False)
    registry_changed()  # what the service does after a change in this process
    with pytest.raises(AgentError, match="disabled"):
        await r.call("a", "acme", 0, context())


async def test_concurrency_limit_holds_calls_beyond_it_per_worker_process(
    store: SqlStore,
) -> None:
    GAUGE.reset()
    store.add_agent(
        organization="acme", slug="gated", kind="python", target=f"{T}:gated", concurrency_limit=2
    )
    r = registry(store)
    # with the record cached, a call reaches the agent or the slot queue without yielding,
    # so all five have arrived by the time the second one signals that it runs
    await r.find("gated", "acme")
    calls = [
        asyncio.create_task(r.call("gated", "acme", {}, context(step_id=f"s{i}"))) for i in range(5)
    ]
    async with asyncio.timeout(10):
        while GAUGE.now < 2:
            GAUGE.changed.clear()
            await GAUGE.changed.wait()
    assert all(not c.done() for c in calls)
    assert (GAUGE.now, GAUGE.calls) == (2, 2)  # the other three wait for a slot
    GAUGE.gate.set()
    results = await asyncio.gather(*calls)
    assert [res["output"]["step"] for res in results] == [f"s{i}" for i in range(5)]
    assert GAUGE.peak == 2


async def test_agent_timeout_fails_the_call_with_agent_timeout(store: SqlStore) -> None:
    store.add_agent(
        organization="acme", slug="stuck", kind="python", target=f"{T}:forever", timeout_seconds=0.2
    )
    r = registry(store)
    with pytest.raises(AgentError) as caught:
        await r.call("stuck", "acme", None, context())
    assert (caught.value.code, caught.value.retryable) == ("agent_timeout", True)
    assert "0.2 s" in caught.value.message
    await r.drain()
    record = store.get_agent("acme", "stuck")
    assert record.last_error is not None
    assert record.last_error["code"] == "agent_timeout"


async def test_health_records_the_last_success_and_the_last_error(store: SqlStore) -> None:
    store.add_agent(organization="acme", slug="ok", kind="python", target=f"{T}:shout")
    store.add_agent(organization="acme", slug="bad", kind="python", target=f"{T}:broken")
    r = registry(store)
    await r.call("ok", "acme", {"text": "x"}, context())
    with pytest.raises(AgentError):
        await r.call("bad", "acme", None, context())
    await r.drain()
    ok, bad = store.get_agent("acme", "ok"), store.get_agent("acme", "bad")
    assert ok.last_success_at is not None
    assert ok.last_error is None
    assert bad.last_success_at is None
    assert bad.last_error == {
        "code": "agent_rejected",
        "message": "broken agent refuses",
        "retryable": False,
        "details": {},
    }


async def test_a_denied_call_fails_the_step_with_routing_showstopper_naming_the_rule(
    store: SqlStore, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="podium.routing")
    store.put_config(
        "routing-policy",
        {
            "rules": [
                {
                    "name": "no-pii-to-external",
                    "effect": "deny",
                    "agents": ["echo"],
                    "inputPatterns": ["card-number"],
                }
            ]
        },
        actor="test",
    )
    r = Registry(store)  # reads the stored policy
    doc = one_step("echo", input='{userMessage: "card 4111 1111 1111 1111"}')
    run = await run_to_end(store, fast_settings(db_url), doc, agents=r)  # type: ignore[arg-type]
    (step,) = store.steps_of(run.id)
    assert run.status == "failed"
    assert step.error == {
        "code": "routing_showstopper",
        "message": (
            'denied by rule "no-pii-to-external" (pattern card-number matched input.userMessage)'
        ),
        "retryable": False,
        "details": {
            "rule": "no-pii-to-external",
            "pattern": "card-number",
            "path": "input.userMessage",
        },
    }
    assert step.attempt == 1
    assert any(
        'routing deny: agent "echo" for organization "acme" by rule "no-pii-to-external"' in m
        for m in caplog.messages
    )
    assert "4111" not in caplog.text


async def test_agent_overrides_on_retry_swap_the_step_to_a_registry_agent(
    store: SqlStore, db_url: str
) -> None:
    store.add_agent(organization="acme", slug="shouter", kind="python", target=f"{T}:shout")
    settings = fast_settings(db_url)
    r = registry(store)
    run_id = launch(store, definition(one_step("reject", attempts=1)), {}, organization="acme")
    async with running_worker(store, settings, r):  # type: ignore[arg-type]
        failed = await wait_terminal(store, run_id)
    assert failed.status == "failed"
    recovery.retry(
        store,
        Actor(organization="acme", role="operator", name="ops@acme"),
        run_id,
        modifications={"agentOverrides": {"only": "shouter"}},
    )
    async with running_worker(store, settings, r):  # type: ignore[arg-type]
        done = await wait_terminal(store, run_id)
    assert done.status == "completed"
    (step,) = store.steps_of(run_id)
    assert step.output["output"] == {"shouted": "HI"}
    assert step.output["agent"]["slug"] == "shouter"
    await r.drain()
    assert store.get_agent("acme", "shouter").last_success_at is not None


async def test_a_policy_change_applies_at_once_in_this_process_and_a_broken_one_fails_closed(
    store: SqlStore,
) -> None:
    r = Registry(store)  # the stored policy, cached
    assert (await r.call("echo", "acme", {"text": "a"}, context()))["success"]
    service.put_policy(
        store,
        Actor.local("acme"),
        {"rules": [{"name": "no-echo", "effect": "deny", "agents": ["echo"]}]},
    )
    with pytest.raises(AgentError, match='denied by rule "no-echo"'):
        await r.call("echo", "acme", {"text": "a"}, context())
    store.put_config("routing-policy", {"rules": [{"effect": "deny"}]}, actor="hand-edit")
    registry_changed()
    with pytest.raises(AgentError) as caught:
        await r.call("echo", "acme", {"text": "a"}, context())
    assert caught.value.code == "routing_showstopper"
    assert "the stored routing policy is invalid" in caught.value.message
