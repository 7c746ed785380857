"""A2A agents in real runs: Podium's worker runs steps on the demo and test agents (on
SQLite and PostgreSQL), records the task in the step's runtime, retries a failed task with a
new message, and cancels the agent's task when the run is aborted."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from podium.agents.a2a.client import A2AAgent
from podium.agents.a2a.demo import demo_server
from podium.agents.a2a.hosting import AgentServer
from podium.agents.registry.resolver import LocalAgents
from podium.domain.definition import parse_definition
from podium.engine.launcher import launch
from podium.storage.store import SqlStore
from tests.agents.a2a_servers import AgentFarm
from tests.agents.conftest import wait_set
from tests.support import fast_settings, run_to_end, running_worker, wait_for, wait_terminal

PIPELINE = """
metadata: {name: a2a-pipeline, version: 1.0.0}
orchestration:
  parameters:
    - {name: text, type: string}
  error_handling:
    on_step_failure: {maxAttempts: 2, strategy: fixed, initialDelayMs: 50}
  steps:
    - id: summarize
      agent: summarizer
      input: {text: "{{ parameters.text }}", sentences: 2}
      output_mapping: {summary: "$.output.text", taskId: "$.a2a.taskId"}
    - id: translate
      agent: translator
      depends_on: [summarize]
      input: {text: "{{ steps.summarize.summary }}"}
      output_mapping: {text: "$.output.text", version: "$.agent.cardVersion"}
    - id: keywords
      agent: keywords
      depends_on: [summarize]
      input: {userMessage: "{{ steps.summarize.summary }}", count: 3}
      output_mapping: {keywords: "$.output.data.keywords"}
    - id: review
      agent: unreliable
      depends_on: [translate, keywords]
      input: {text: "{{ steps.translate.text }}"}
"""

HOLD = """
metadata: {name: a2a-hold, version: 1.0.0}
orchestration:
  steps:
    - {id: wait, agent: remote, input: {mode: hold, text: "until aborted"}}
"""

TEXT = "Agents answer over A2A. Podium keeps going. This sentence is dropped."


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    s = SqlStore.open(db_url)
    yield s
    s.close()


@pytest.fixture(scope="module")
def demo() -> Iterator[AgentServer]:
    with demo_server(port=0) as server:
        yield server


def a2a_agents(urls: dict[str, str], **options: Any) -> LocalAgents:
    agents = LocalAgents(builtins=False)
    for slug, url in urls.items():
        agents.add(A2AAgent(slug, url, poll_interval=0.02, **options))
    return agents


async def test_a_run_of_a2a_steps_completes_through_the_worker(
    store: SqlStore, db_url: str, demo: AgentServer
) -> None:
    run = await run_to_end(
        store,
        fast_settings(db_url),
        PIPELINE,
        {"text": TEXT},
        agents=a2a_agents(demo.urls),
    )

    assert run.status == "completed", store.steps_of(run.id)
    steps = {s.step_id: s for s in store.steps_of(run.id)}
    summary = "Agents answer over A2A. Podium keeps going."
    assert steps["summarize"].output["summary"] == summary
    assert steps["translate"].output == {"text": summary.upper(), "version": "1.0.0"}
    assert steps["keywords"].output == {"keywords": ["agents", "answer", "over"]}
    review = steps["review"]
    assert review.attempt == 2  # unreliable failed the first message, the retry sent a new one
    assert review.output["output"]["data"] == {"messages": 2}
    recorded = steps["summarize"].metadata["runtime"]["a2a"]
    assert recorded["taskId"] == steps["summarize"].output["taskId"]
    assert recorded["agentUrl"] == demo.url("summarizer")
    assert review.metadata["runtime"]["a2a"]["attempt"] == 2


async def test_aborting_a_run_cancels_the_agent_task(
    store: SqlStore, db_url: str, farm: AgentFarm
) -> None:
    scripted = farm.agent("v1-stream")
    agents = a2a_agents({"remote": farm.url("v1-stream")})
    run_id = launch(store, parse_definition(HOLD), {}, organization="acme")
    async with running_worker(store, fast_settings(db_url), agents):
        (step,) = await wait_for(
            lambda: store.steps_of(run_id),
            lambda steps: bool(steps[0].metadata.get("runtime", {}).get("a2a")),
        )
        key = f"{run_id}:{step.id}:{step.generation}"
        assert scripted.messages_for(key) == 1

        store.abort(run_id, actor="test", reason="enough")

        assert await wait_set(scripted.cancelled(key))
        run = await wait_terminal(store, run_id)
    assert run.status == "aborted"


async def test_a_step_timeout_cancels_the_agent_task_and_fails_the_attempt(
    store: SqlStore, db_url: str, farm: AgentFarm
) -> None:
    scripted = farm.agent("v03-poll")
    agents = a2a_agents({"remote": farm.url("v03-poll")})
    doc = HOLD.replace(
        "input: {mode: hold", "timeoutSeconds: 0.5, retry: {maxAttempts: 1}, input: {mode: hold"
    )
    run = await run_to_end(store, fast_settings(db_url), doc, agents=agents)
    (step,) = store.steps_of(run.id)
    assert run.status == "failed"
    assert step.error is not None
    assert step.error["code"] == "agent_timeout"
    assert await wait_set(scripted.cancelled(f"{run.id}:{step.id}:{step.generation}"))
