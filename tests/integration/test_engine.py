"""Execution semantics of spec section 4, on SQLite and PostgreSQL, with a real worker."""

from __future__ import annotations

import asyncio
import itertools
import threading
from datetime import datetime
from typing import Any

import pytest

from podium.agents.base import AgentContext
from podium.agents.registry.resolver import LocalAgents
from podium.domain.definition import parse_definition
from podium.engine.launcher import launch
from podium.errors import Conflict, ParametersInvalid
from podium.storage.store import SqlStore
from tests.support import fast_settings, run_to_end, running_worker, wait_for, wait_terminal


@pytest.fixture
def store(db_url: str) -> Any:
    s = SqlStore.open(db_url)
    yield s
    s.close()


class Gauge:
    """Counts calls in flight and remembers the highest count seen."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.order: list[str] = []
        self._lock = threading.Lock()

    def agent(self, seconds: float = 0.15) -> Any:
        async def work(input: Any, context: AgentContext) -> dict[str, Any]:
            with self._lock:
                self.now += 1
                self.peak = max(self.peak, self.now)
                self.order.append(context.step_id)
            try:
                await asyncio.sleep(seconds)
            finally:
                with self._lock:
                    self.now -= 1
            return {"step": context.step_id}

        return work


def fan(n: int, max_parallel: int, agent: str = "gauge") -> str:
    steps = "\n".join(f"    - {{id: b{i}, agent: {agent}, depends_on: [root]}}" for i in range(n))
    joins = ", ".join(f"b{i}" for i in range(n))
    return f"""
metadata: {{name: fan, version: 1.0.0}}
orchestration:
  execution: {{concurrency: {{maxParallelSteps: {max_parallel}}}}}
  steps:
    - {{id: root, agent: echo}}
{steps}
    - {{id: join, agent: echo, depends_on: [{joins}]}}
"""


async def test_max_parallel_steps_is_the_highest_concurrency_observed(
    store: SqlStore, db_url: str
) -> None:
    gauge = Gauge()
    agents = LocalAgents()
    agents.add_python("gauge", gauge.agent())
    run = await run_to_end(store, fast_settings(db_url), fan(9, 3), agents=agents)
    assert run.status == "completed"
    assert gauge.peak == 3


async def test_worker_concurrency_caps_steps_across_runs(store: SqlStore, db_url: str) -> None:
    gauge = Gauge()
    agents = LocalAgents()
    agents.add_python("gauge", gauge.agent())
    defn = parse_definition(fan(4, 10))
    ids = [launch(store, defn, {}, organization="acme") for _ in range(3)]
    async with running_worker(store, fast_settings(db_url, worker_concurrency=2), agents):
        for run_id in ids:
            assert (await wait_terminal(store, run_id)).status == "completed"
    assert gauge.peak == 2


async def test_dependencies_start_only_after_what_they_depend_on(
    store: SqlStore, db_url: str
) -> None:
    doc = """
metadata: {name: diamond, version: 1.0.0}
orchestration:
  steps:
    - {id: a, agent: echo, input: {text: start}}
    - {id: b, agent: uppercase, depends_on: [a], input: {text: "{{ steps.a.output.text }}"}}
    - {id: c, agent: word-count, depends_on: [a], input: {text: "{{ steps.a.output.text }} x"}}
    - id: d
      agent: echo
      depends_on: [b, c]
      input: {upper: "{{ steps.b.output.text }}", counts: "{{ steps.c.output }}"}
"""
    run = await run_to_end(store, fast_settings(db_url), doc)
    assert run.status == "completed"
    events = store.events_after(run.id)
    position = {(e.type.rsplit(".", 1)[1], e.step_id): e.sequence for e in events if e.step_id}
    for step, deps in {"b": ["a"], "c": ["a"], "d": ["b", "c"]}.items():
        for dep in deps:
            assert position[("completed", dep)] < position[("queued", step)]
    # a whole-string placeholder takes the raw value (an object here), not its text
    assert run.outputs is not None
    assert run.outputs["d"]["output"] == {
        "upper": "START",
        "counts": {"words": 2, "characters": 7},
    }


async def test_retries_follow_the_backoff_policy(store: SqlStore, db_url: str) -> None:
    doc = """
metadata: {name: retrying, version: 1.0.0}
orchestration:
  error_handling:
    on_step_failure: {maxAttempts: 3, strategy: exponential, initialDelayMs: 200,
                      backoffMultiplier: 2, maxDelayMs: 10000}
  steps:
    - {id: shaky, agent: flaky, input: {failTimes: 2}}
"""
    run = await run_to_end(store, fast_settings(db_url), doc)
    assert run.status == "completed"
    events = store.events_after(run.id)
    starts = [e.timestamp for e in events if e.type == "orchestration.step.running"]
    retries = [e for e in events if e.type == "orchestration.step.retry_scheduled"]
    assert len(starts) == 3
    assert [r.data["nextAttempt"] for r in retries] == [2, 3]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    assert gaps[0] >= 0.2
    assert gaps[1] >= 0.4
    for retry in retries:  # the promised time is honoured
        due = datetime.fromisoformat(retry.data["nextRetryAt"])
        assert due >= retry.timestamp
    step = store.steps_of(run.id)[0]
    attempts = store.attempts_of(step.id)
    assert [a.outcome for a in attempts] == ["retry_scheduled", "retry_scheduled", "completed"]
    assert [a.attempt for a in attempts] == [1, 2, 3]


@pytest.mark.parametrize(
    ("agent", "input", "code"),
    [
        ("reject", "{}", "agent_rejected"),
        ("no-such-agent", "{}", "agent_not_found"),
        ("echo", '{text: "{{ steps.first.output.missing }}"}', "input_resolution_error"),
    ],
)
async def test_errors_that_are_not_retryable_fail_at_once(
    store: SqlStore, db_url: str, agent: str, input: str, code: str
) -> None:
    doc = f"""
metadata: {{name: strict, version: 1.0.0}}
orchestration:
  error_handling: {{on_step_failure: {{maxAttempts: 5, initialDelayMs: 10}}}}
  steps:
    - {{id: first, agent: echo, input: {{text: hi}}}}
    - {{id: second, agent: {agent}, depends_on: [first], input: {input}}}
"""
    run = await run_to_end(store, fast_settings(db_url), doc)
    assert run.status == "failed"
    second = store.steps_of(run.id)[1]
    assert second.status == "failed"
    assert second.error is not None
    assert second.error["code"] == code
    assert second.error["retryable"] is False
    assert len(store.attempts_of(second.id)) == 1
    assert run.error is not None
    assert run.error["code"] == code
    assert run.error["stepId"] == "second"


async def test_a_missing_value_is_an_error_and_never_an_empty_string(
    store: SqlStore, db_url: str
) -> None:
    doc = """
metadata: {name: missing, version: 1.0.0}
orchestration:
  steps:
    - {id: first, agent: echo, input: {text: hi}}
    - {id: second, agent: echo, depends_on: [first],
       input: {text: "before {{ steps.first.output.nothing }} after"}}
"""
    run = await run_to_end(store, fast_settings(db_url), doc)
    second = store.steps_of(run.id)[1]
    assert second.error is not None
    assert second.error["code"] == "input_resolution_error"
    assert "steps.first.output.nothing" in second.error["message"]
    assert second.output is None


async def test_a_step_timeout_is_a_retryable_agent_timeout(store: SqlStore, db_url: str) -> None:
    doc = """
metadata: {name: slow, version: 1.0.0}
orchestration:
  error_handling: {on_step_failure: {maxAttempts: 2, initialDelayMs: 10}}
  steps:
    - {id: nap, agent: sleep, timeoutSeconds: 0.2, input: {seconds: 30}}
"""
    run = await run_to_end(store, fast_settings(db_url), doc, timeout=15)
    assert run.status == "failed"
    step = store.steps_of(run.id)[0]
    assert step.error is not None
    assert step.error["code"] == "agent_timeout"
    assert [a.outcome for a in store.attempts_of(step.id)] == ["retry_scheduled", "failed"]


async def test_the_run_deadline_fails_the_run(store: SqlStore, db_url: str) -> None:
    doc = """
metadata: {name: deadline, version: 1.0.0}
orchestration:
  execution: {timeoutSeconds: 1}
  steps:
    - {id: nap, agent: sleep, input: {seconds: 30}}
    - {id: never, agent: echo, depends_on: [nap]}
"""
    started = asyncio.get_running_loop().time()
    run = await run_to_end(store, fast_settings(db_url), doc, timeout=15)
    assert run.status == "failed"
    assert asyncio.get_running_loop().time() - started < 5
    nap, never = store.steps_of(run.id)
    assert nap.status == "failed"
    assert nap.error is not None
    assert nap.error["code"] in {"run_timeout", "agent_timeout"}
    assert never.status == "pending"
    assert run.error is not None


async def test_fail_fast_starts_nothing_new_but_keeps_what_was_in_flight(
    store: SqlStore, db_url: str
) -> None:
    doc = """
metadata: {name: failfast, version: 1.0.0}
orchestration:
  execution: {concurrency: {maxParallelSteps: 4}}
  steps:
    - {id: root, agent: echo}
    - {id: doomed, agent: reject, depends_on: [root]}
    - {id: slow, agent: sleep, depends_on: [root], input: {seconds: 0.6}}
    - {id: after, agent: echo, depends_on: [slow]}
"""
    run = await run_to_end(store, fast_settings(db_url), doc)
    assert run.status == "failed"
    status = {s.step_id: s.status for s in store.steps_of(run.id)}
    assert status == {
        "root": "completed",
        "doomed": "failed",
        "slow": "completed",  # in flight when doomed failed: its result is kept
        "after": "queued",  # released by slow, never started
    }
    types = [e.type for e in store.events_after(run.id)]
    assert types[-1] == "orchestration.run.failed"
    assert types.count("orchestration.run.failed") == 1


async def test_a_run_never_reports_completed_while_a_retry_is_waiting(
    store: SqlStore, db_url: str
) -> None:
    doc = """
metadata: {name: waiting, version: 1.0.0}
orchestration:
  error_handling: {on_step_failure: {maxAttempts: 2, initialDelayMs: 800}}
  steps:
    - {id: quick, agent: echo}
    - {id: shaky, agent: flaky, input: {failTimes: 1}}
"""
    defn = parse_definition(doc)
    run_id = launch(store, defn, {}, organization="acme")
    async with running_worker(store, fast_settings(db_url)):
        await wait_for(
            lambda: {s.step_id: s.status for s in store.steps_of(run_id)},
            lambda st: st == {"quick": "completed", "shaky": "pending"},
        )
        assert store.get_run(run_id).status == "running"
        shaky = store.steps_of(run_id)[1]
        assert shaky.metadata["runtime"]["retry"]["attempt"] == 2
        assert "nextRetryAt" in shaky.metadata["runtime"]["retry"]
        final = await wait_terminal(store, run_id)
    assert final.status == "completed"


async def test_abort_cancels_running_work_and_marks_everything_aborted(
    store: SqlStore, db_url: str
) -> None:
    cancelled = threading.Event()

    async def patient(input: Any) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    agents = LocalAgents()
    agents.add_python("patient", patient)
    doc = """
metadata: {name: abortable, version: 1.0.0}
orchestration:
  steps:
    - {id: wait, agent: patient}
    - {id: later, agent: echo, depends_on: [wait]}
"""
    run_id = launch(store, parse_definition(doc), {}, organization="acme")
    async with running_worker(store, fast_settings(db_url), agents):
        await wait_for(lambda: store.steps_of(run_id)[0].status, lambda s: s == "running")
        running = store.abort(run_id, actor="tester", reason="no longer needed")
        assert len(running) == 1
        await wait_for(cancelled.is_set, bool, timeout=5)
    run = store.get_run(run_id)
    assert run.status == "aborted"
    assert {s.status for s in store.steps_of(run_id)} == {"aborted"}
    last = store.events_after(run_id)[-1]
    assert last.type == "orchestration.run.aborted"
    assert last.data["actor"] == "tester"
    assert last.data["abortedSteps"] == ["wait", "later"]
    with pytest.raises(Conflict):
        store.abort(run_id, actor="tester")


async def test_the_idempotency_key_is_stable_across_automatic_retries(
    store: SqlStore, db_url: str
) -> None:
    seen: list[str] = []

    async def remember(input: Any, context: AgentContext) -> str:
        seen.append(context.idempotency_key)
        if len(seen) < 3:
            raise RuntimeError("transient")
        return "ok"

    agents = LocalAgents()
    agents.add_python("remember", remember)
    doc = """
metadata: {name: keyed, version: 1.0.0}
orchestration:
  error_handling: {on_step_failure: {maxAttempts: 3, initialDelayMs: 10}}
  steps: [{id: only, agent: remember}]
"""
    run = await run_to_end(store, fast_settings(db_url), doc, agents=agents)
    assert run.status == "completed"
    step = store.steps_of(run.id)[0]
    assert seen == [f"{run.id}:{step.id}:1"] * 3


async def test_a_run_follows_the_definition_it_was_launched_with(
    store: SqlStore, db_url: str
) -> None:
    """D7: the run keeps its snapshot whatever happens to the definition later."""
    from podium.storage import snapshots

    template = """
metadata: {{name: pinned, version: 1.0.0}}
orchestration:
  parameters: [{{name: who, type: string, default: {default}}}]
  steps: [{{id: greet, agent: echo, input: {{text: "{word} {{{{ parameters.who }}}}"}}}}]
"""
    first = launch(
        store,
        parse_definition(template.format(default="ann", word="hello")),
        {},
        organization="acme",
    )
    second = launch(
        store, parse_definition(template.format(default="bob", word="bye")), {}, organization="acme"
    )
    snapshots._cache.clear()  # as another process would: only the stored snapshot is left
    async with running_worker(store, fast_settings(db_url)):
        a = await wait_terminal(store, first)
        b = await wait_terminal(store, second)
    assert a.outputs is not None
    assert b.outputs is not None
    assert a.outputs["greet"]["output"] == {"text": "hello ann"}
    assert b.outputs["greet"]["output"] == {"text": "bye bob"}
    assert store.get_snapshot(first)["orchestration"]["steps"][0]["input"]["text"].startswith(
        "hello"
    )


async def test_launch_checks_parameters_and_refuses_unsupported_features(
    store: SqlStore,
) -> None:
    doc = """
metadata: {name: params, version: 1.0.0}
orchestration:
  parameters:
    - {name: depth, type: integer, enum: [1, 2, 3], default: 2}
    - {name: company, type: string, required: true}
  steps: [{id: s, agent: echo}]
"""
    defn = parse_definition(doc)
    with pytest.raises(ParametersInvalid) as problem:
        launch(store, defn, {"depth": 7, "extra": 1}, organization="acme")
    paths = {i.path for i in problem.value.issues}
    assert paths == {"parameters.depth", "parameters.extra", "parameters.company"}
    run_id = launch(store, defn, {"company": "Acme"}, organization="acme")
    assert store.get_run(run_id).parameters == {"depth": 2, "company": "Acme"}
    checkpoint = parse_definition("""
metadata: {name: gated, version: 1.0.0}
orchestration:
  steps: [{id: s, agent: echo, checkpoint_after: {question: "ok?"}}]
""")
    # human checkpoints are supported now (tests/integration/test_checkpoints.py)
    assert store.get_run(launch(store, checkpoint, {}, organization="acme")).status == "running"


async def test_event_sequences_have_no_gaps(store: SqlStore, db_url: str) -> None:
    run = await run_to_end(store, fast_settings(db_url), fan(6, 2, agent="echo"))
    events = store.events_after(run.id)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert store.get_run(run.id).last_sequence == len(events)
    assert events[0].type == "orchestration.run.created"
    assert events[-1].type == "orchestration.run.completed"
    envelope = events[1].envelope()
    assert set(envelope) >= {"id", "sequence", "type", "runId", "organizationSlug", "timestamp"}
    assert store.events_after(run.id, after=3)[0].sequence == 4
