"""B1: a bad agent output fails only its own step, at once, with ``agent_output_invalid``;
every other step of the same batch or run runs exactly once. Also the totality of an attempt:
whatever goes wrong becomes a classified step error, never a step left claimed."""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from typing import Any

import pytest

from podium.agents.base import AgentContext, AgentResolver
from podium.agents.registry.resolver import LocalAgents
from podium.domain.definition import parse_definition
from podium.engine import executor
from podium.engine.launcher import launch
from podium.storage.store import SqlStore
from tests.support import fast_settings, run_to_end, running_worker, wait_terminal


@pytest.fixture
def store(db_url: str) -> Any:
    s = SqlStore.open(db_url)
    yield s
    s.close()


def siblings(n: int, bad: bool, name: str = "siblings") -> str:
    healthy = "\n".join(
        f"    - {{id: ok{i}, agent: healthy, depends_on: [root]}}" for i in range(n)
    )
    bad_step = "    - {id: bad, agent: bad, depends_on: [root]}" if bad else ""
    return f"""
metadata: {{name: {name}, version: 1.0.0}}
orchestration:
  execution: {{concurrency: {{maxParallelSteps: 64}}}}
  error_handling: {{on_step_failure: {{maxAttempts: 5, initialDelayMs: 10}}}}
  steps:
    - {{id: root, agent: echo}}
{healthy}
{bad_step}
"""


class Calls:
    """Counts agent calls per (run, step); ``started`` is set once ``expected`` are running."""

    def __init__(self, expected: int) -> None:
        self.count: collections.Counter[tuple[str, str]] = collections.Counter()
        self.expected = expected
        self.started = asyncio.Event()
        self.bad_returned_at: float | None = None  # time.time() when the bad agent returned
        self._lock = threading.Lock()

    def seen(self, context: AgentContext) -> None:
        with self._lock:
            self.count[(context.run_id, context.step_id)] += 1
            if sum(self.count.values()) >= self.expected:
                self.started.set()


def agents_for(calls: Calls, bad_output: Any, *, together: bool) -> LocalAgents:
    """``healthy`` and ``bad`` agents; with ``together`` all wait until every one has
    started, so that their results reach the recorder at the same moment (one batch)."""

    async def healthy(input: Any, context: AgentContext) -> dict[str, Any]:
        calls.seen(context)
        if together:
            await asyncio.wait_for(calls.started.wait(), 30)
        else:
            await asyncio.sleep(0.3)
        return {"fine": context.step_id}

    async def bad(input: Any, context: AgentContext) -> Any:
        calls.seen(context)
        if together:
            await asyncio.wait_for(calls.started.wait(), 30)
        calls.bad_returned_at = time.time()
        return bad_output

    agents = LocalAgents()
    agents.add_python("healthy", healthy)
    agents.add_python("bad", bad)
    return agents


async def run_siblings(
    store: SqlStore, db_url: str, agents: AgentResolver, docs: list[str]
) -> list[str]:
    settings = fast_settings(db_url, worker_concurrency=64, lease_seconds=10.0)
    run_ids = [launch(store, parse_definition(d), {}, organization="acme") for d in docs]
    async with running_worker(store, settings, agents):
        for run_id in run_ids:
            await wait_terminal(store, run_id, timeout=60)
    return run_ids


def check_bad_step(
    store: SqlStore, run_id: str, message: str, returned_at: float | None = None
) -> None:
    """The bad step failed on its first attempt with ``message``, within 1 s of its agent
    returning (of its claim when ``returned_at`` is unknown)."""
    steps = {s.step_id: s for s in store.steps_of(run_id)}
    bad = steps["bad"]
    assert bad.status == "failed"
    assert bad.error is not None
    assert bad.error["code"] == "agent_output_invalid"
    assert bad.error["retryable"] is False
    assert message in bad.error["message"]
    assert bad.output is None
    assert bad.recoveries == 0
    assert len(store.attempts_of(bad.id)) == 1
    events = [e for e in store.events_after(run_id) if e.step_record_id == bad.id]
    running = next(e for e in events if e.type == "orchestration.step.running")
    failed = next(e for e in events if e.type == "orchestration.step.failed")
    since = returned_at if returned_at is not None else running.timestamp.timestamp()
    assert failed.timestamp.timestamp() - since < 1.0


async def test_b1_one_bad_output_among_20_healthy_siblings(store: SqlStore, db_url: str) -> None:
    """B1: one NaN output among 20 siblings finishing together: the bad step fails with
    agent_output_invalid within 1 s, every healthy agent is called exactly once."""
    calls = Calls(expected=21)
    agents = agents_for(calls, {"items": [1, 2, 3, float("nan")]}, together=True)
    (run_id,) = await run_siblings(store, db_url, agents, [siblings(20, bad=True)])
    check_bad_step(
        store, run_id, "output.output.items[3]: NaN is not valid JSON", calls.bad_returned_at
    )
    healthy = [s for s in store.steps_of(run_id) if s.step_id.startswith("ok")]
    assert len(healthy) == 20
    assert all(s.status == "completed" for s in healthy)
    assert all(calls.count[(run_id, s.step_id)] == 1 for s in healthy)
    assert store.get_run(run_id).status == "failed"


async def test_b1_a_bad_output_in_one_run_leaves_another_run_alone(
    store: SqlStore, db_url: str
) -> None:
    """B1 across runs: the bad run fails its step; the other run completes; every healthy
    agent of both runs is called exactly once."""
    calls = Calls(expected=21)
    agents = agents_for(calls, {"text": "NUL \x00 inside"}, together=True)
    bad_run, good_run = await run_siblings(
        store, db_url, agents, [siblings(10, bad=True, name="a"), siblings(10, bad=False)]
    )
    check_bad_step(store, bad_run, "contains a NUL character", calls.bad_returned_at)
    assert store.get_run(good_run).status == "completed"
    for run_id in (bad_run, good_run):
        for s in store.steps_of(run_id):
            if s.step_id.startswith("ok"):
                assert s.status == "completed"
                assert calls.count[(run_id, s.step_id)] == 1


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ({"x": float("inf")}, "Infinity is not valid JSON"),
        ({"tags": {1, 2}}, "a set is not JSON-serialisable"),
        ("x" * 5000, "bytes as JSON, more than the limit of 4096"),
        ({"deep": [[[[[[[[[[1]]]]]]]]]]}, "nests deeper than the limit of 8 levels"),
    ],
)
async def test_b1_every_kind_of_bad_output_fails_at_once(
    store: SqlStore, db_url: str, output: Any, message: str
) -> None:
    """B1: infinity, an object JSON cannot hold, too large, too deep: each fails its step
    with agent_output_invalid on the first attempt."""

    async def bad(input: Any, context: AgentContext) -> Any:
        return output

    agents = LocalAgents()
    agents.add_python("bad", bad)
    settings = fast_settings(db_url, max_output_bytes=4096, max_nesting_depth=8)
    doc = """
metadata: {name: bad, version: 1.0.0}
orchestration:
  error_handling: {on_step_failure: {maxAttempts: 5, initialDelayMs: 10}}
  steps:
    - {id: bad, agent: bad}
"""
    run = await run_to_end(store, settings, doc, agents=agents)
    assert run.status == "failed"
    check_bad_step(store, run.id, message)


async def test_b1_group_commit_isolates_a_row_the_database_refuses(
    store: SqlStore, db_url: str, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    """B1, the second line of defence: with output checks switched off, a result the write
    itself refuses (a set cannot be serialised) is recorded apart from the batch it came in;
    only its own step fails, every healthy sibling completes once."""
    monkeypatch.setattr(executor, "check_payload", lambda *args, **kwargs: None)
    calls = Calls(expected=21)
    agents = agents_for(calls, {"tags": {1, 2}}, together=True)
    with caplog.at_level(logging.WARNING, logger="podium.engine.worker"):
        (run_id,) = await run_siblings(store, db_url, agents, [siblings(20, bad=True)])
    check_bad_step(store, run_id, "the result could not be stored", calls.bad_returned_at)
    for s in store.steps_of(run_id):
        if s.step_id.startswith("ok"):
            assert s.status == "completed"
            assert calls.count[(run_id, s.step_id)] == 1
    batches = [r for r in caplog.records if "group commit of" in r.getMessage()]
    assert batches, "the bad result never came in a batch"
    assert any(r.args and isinstance(r.args, tuple) and r.args[0] > 1 for r in batches)


# -- totality -------------------------------------------------------------------------------


class RawAgent:
    """An agent that is not a python agent: its exceptions reach the executor as they are."""

    kind = "raw"

    def __init__(self, slug: str, exc: BaseException) -> None:
        self.slug = slug
        self.exc = exc

    async def invoke(self, input: Any, context: AgentContext) -> dict[str, Any]:
        raise self.exc


class BrokenResolver:
    """A resolver with a bug: the kind of failure that is no agent's fault."""

    def resolve(self, slug: str, organization_slug: str) -> Any:
        raise KeyError(slug)


ONE_STEP = """
metadata: {name: one, version: 1.0.0}
orchestration:
  error_handling: {on_step_failure: {maxAttempts: 2, initialDelayMs: 10}}
  steps:
    - {id: only, agent: raw}
"""


@pytest.mark.parametrize(
    "exc", [RuntimeError("boom"), RecursionError("maximum recursion depth exceeded")]
)
async def test_an_exception_from_the_agent_is_a_retryable_agent_execution_error(
    store: SqlStore, db_url: str, exc: BaseException
) -> None:
    agents = LocalAgents()
    agents.add(RawAgent("raw", exc))
    run = await run_to_end(store, fast_settings(db_url), ONE_STEP, agents=agents)
    (step,) = store.steps_of(run.id)
    assert step.status == "failed"
    assert step.error is not None
    assert step.error["code"] == "agent_execution_error"
    assert step.error["retryable"] is True
    assert type(exc).__name__ in step.error["message"]
    assert [a.outcome for a in store.attempts_of(step.id)] == ["retry_scheduled", "failed"]


async def test_a_bug_in_podium_is_an_internal_error_logged_once(
    store: SqlStore, db_url: str, caplog: Any
) -> None:
    with caplog.at_level(logging.ERROR, logger="podium.engine.executor"):
        run = await run_to_end(store, fast_settings(db_url), ONE_STEP, agents=BrokenResolver())
    (step,) = store.steps_of(run.id)
    assert step.status == "failed"
    assert step.lease_owner is None
    assert step.recoveries == 0
    assert step.error is not None
    assert step.error["code"] == "internal_error"
    assert step.error["retryable"] is False
    assert "KeyError" in step.error["message"]
    logged = [r for r in caplog.records if "internal error in step only" in r.getMessage()]
    assert len(logged) == 1
    assert logged[0].exc_info is not None
