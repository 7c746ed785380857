"""The seam around a step attempt: a step cache port and attempt observers handed to the
worker reach every attempt; steps run by kind; a port that fails never fails the step."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from podium.agents.base import AgentContext, AgentResolver
from podium.agents.registry.resolver import LocalAgents
from podium.domain.definition import parse_definition
from podium.engine import executor
from podium.engine.attempt import Outcome, StepPorts
from podium.engine.launcher import launch
from podium.engine.worker import Worker
from podium.storage.records import ClaimedStep
from podium.storage.store import SqlStore
from tests.support import fast_settings, wait_terminal

DOC = """
metadata: {name: seam, version: 1.0.0}
orchestration:
  steps:
    - {id: first, agent: counted, input: {n: 1}}
    - {id: second, agent: counted, depends_on: [first], input: {n: "{{ steps.first.output.n }}"}}
"""


@pytest.fixture
def store(db_url: str) -> Any:
    s = SqlStore.open(db_url)
    yield s
    s.close()


class MemoryCache:
    """A StepCache keyed by (step id, resolved input), as a cache port would be."""

    def __init__(self, *, broken: bool = False) -> None:
        self.entries: dict[tuple[str, str], Outcome] = {}
        self.lookups = 0
        self.broken = broken

    async def lookup(self, step: ClaimedStep, resolved_input: Any) -> Outcome | None:
        self.lookups += 1
        if self.broken:
            raise RuntimeError("cache down")
        return self.entries.get((step.step_id, repr(resolved_input)))

    async def store(self, step: ClaimedStep, resolved_input: Any, outcome: Outcome) -> None:
        if self.broken:
            raise RuntimeError("cache down")
        self.entries[(step.step_id, repr(resolved_input))] = outcome


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, bool]] = []

    def attempt_finished(
        self, step: ClaimedStep, kind: str, outcome: Outcome, seconds: float
    ) -> None:
        assert seconds >= 0
        self.seen.append((step.step_id, kind, outcome.ok))


def counting_agents() -> tuple[LocalAgents, list[str]]:
    calls: list[str] = []

    async def counted(input: Any, context: AgentContext) -> dict[str, Any]:
        calls.append(context.step_id)
        return {"n": input["n"]}

    agents = LocalAgents()
    agents.add_python("counted", counted)
    return agents, calls


async def run_once(store: SqlStore, db_url: str, agents: AgentResolver, **worker: Any) -> str:
    run_id = launch(store, parse_definition(DOC), {}, organization="acme")
    w = Worker(store, agents, fast_settings(db_url), **worker)
    task = asyncio.create_task(w.run())
    try:
        await wait_terminal(store, run_id)
    finally:
        w.stop()
        await asyncio.wait_for(task, 30)
    return run_id


async def test_a_cache_hit_runs_nothing_and_observers_see_each_attempt(
    store: SqlStore, db_url: str
) -> None:
    agents, calls = counting_agents()
    cache, observed = MemoryCache(), Recorder()
    first = await run_once(store, db_url, agents, cache=cache, observers=[observed])
    assert store.get_run(first).status == "completed"
    assert calls == ["first", "second"]
    assert len(cache.entries) == 2
    second = await run_once(store, db_url, agents, cache=cache, observers=[observed])
    assert store.get_run(second).status == "completed"
    assert calls == ["first", "second"]  # both came from the cache
    outputs = {s.step_id: s.output for s in store.steps_of(second)}
    assert outputs["second"]["output"] == {"n": 1}
    assert observed.seen == [
        ("first", "agent", True),
        ("second", "agent", True),
        ("first", "cached", True),
        ("second", "cached", True),
    ]


async def test_a_failing_cache_port_never_fails_the_step(store: SqlStore, db_url: str) -> None:
    agents, calls = counting_agents()
    cache = MemoryCache(broken=True)
    run_id = await run_once(store, db_url, agents, cache=cache)
    assert store.get_run(run_id).status == "completed"
    assert calls == ["first", "second"]
    assert cache.lookups == 2


async def test_steps_are_dispatched_by_kind(
    store: SqlStore, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runner registered for a kind runs that kind's steps (here it replaces ``agent``)."""
    ran: list[tuple[str, Any]] = []

    async def runner(
        step: ClaimedStep, resolved: Any, agents: AgentResolver, ports: StepPorts
    ) -> Outcome:
        ran.append((step.step_id, resolved))
        return Outcome(output={"by": "runner", "output": {"n": 7}}, resolved_input=resolved)

    monkeypatch.setitem(executor.RUNNERS, "agent", executor.RUNNERS["agent"])
    executor.register_step_kind("agent", runner)
    agents, calls = counting_agents()
    run_id = await run_once(store, db_url, agents)
    assert calls == []
    assert ran == [("first", {"n": 1}), ("second", {"n": 7})]
    assert {s.output["by"] for s in store.steps_of(run_id)} == {"runner"}
