"""Agent progress becomes ``orchestration.step.progress`` events (rate-limited per step,
shown by the CLI), and a failed run describes its waiting steps truthfully."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from podium.agents.a2a.client import A2AAgent
from podium.agents.a2a.demo import demo_server
from podium.agents.a2a.hosting import AgentServer
from podium.agents.registry.resolver import LocalAgents
from podium.cli import render
from podium.domain.events import EventType
from podium.service.views import EventView, StepView
from podium.storage.store import SqlStore
from tests.support import fast_settings, run_to_end


@pytest.fixture
def store(db_url: str) -> Any:
    s = SqlStore.open(db_url)
    yield s
    s.close()


@pytest.fixture(scope="module")
def demo() -> Iterator[AgentServer]:
    with demo_server(port=0) as server:
        yield server


async def test_a2a_working_updates_become_rate_limited_progress_events(
    store: SqlStore, db_url: str, demo: AgentServer
) -> None:
    agents = LocalAgents()
    agents.add(A2AAgent("slow", demo.url("slow"), poll_interval=0.02))
    doc = """
metadata: {name: progress, version: 1.0.0}
orchestration:
  steps:
    - {id: wait, agent: slow, input: {seconds: 1.5, interval: 0.03}}
"""
    run = await run_to_end(store, fast_settings(db_url), doc, agents=agents, timeout=60)
    assert run.status == "completed"
    events = store.events_after(run.id)
    progress = [e for e in events if e.type == EventType.STEP_PROGRESS]
    # about 50 WORKING updates in 1.5 s; at most one event per 0.25 s (plus the first)
    assert 2 <= len(progress) <= 1.5 / 0.25 + 2
    assert all(p.step_id == "wait" and p.data["message"] for p in progress)
    assert progress[0].data["a2a"]["state"] == "WORKING"
    assert progress[0].data["attempt"] == 1
    # writes start at least 0.25 s apart; an event's time is that of its transaction, which
    # a busy machine may start late, so only the next gap can shrink: no second holds more
    # than 1 / 0.25 events plus the first and one squeezed by such a delay
    times = [e.timestamp for e in progress]
    assert all(sum(0 <= (u - t).total_seconds() < 1.0 for u in times) <= 6 for t in times)
    completed = next(e for e in events if e.type == EventType.STEP_COMPLETED)
    assert progress[-1].sequence < completed.sequence
    line = render.event_line(EventView.of(progress[-1]))
    assert "progress" in line
    assert progress[-1].data["message"] in line


async def test_a_failed_run_says_why_a_retry_waits_and_counts_only_attempts_made(
    store: SqlStore, db_url: str
) -> None:
    doc = """
metadata: {name: truth, version: 1.0.0}
orchestration:
  error_handling: {on_step_failure: {maxAttempts: 3, strategy: fixed, initialDelayMs: 60000}}
  steps:
    - {id: shaky, agent: flaky, input: {failTimes: 5}}
    - {id: refused, agent: reject, depends_on: [shaky0]}
    - {id: shaky0, agent: flaky, input: {failTimes: 0}}
"""
    run = await run_to_end(store, fast_settings(db_url), doc)
    assert run.status == "failed"
    steps = {s.step_id: StepView.of(s) for s in store.steps_of(run.id)}
    shaky = steps["shaky"]
    assert shaky.status == "pending"  # keeps its status
    assert shaky.attempt == 2  # the next attempt's number
    assert render.attempts_made(shaky) == 1
    note = render.step_note(shaky, render.now_utc(), run_status="failed")
    assert note.startswith("not started: the run failed after attempt 1 failed")
    assert "attempt 2" not in note
    assert render.attempts_made(steps["refused"]) == 1
    assert render.attempts_made(steps["shaky0"]) == 1
    made = sum(max(render.attempts_made(s) - 1, 0) for s in steps.values())
    assert made == 0  # no retry ran
