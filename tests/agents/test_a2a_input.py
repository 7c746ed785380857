"""A2A agents that ask for input (spec section 5, issue 10 §6): INPUT_REQUIRED (and
AUTH_REQUIRED) becomes an approval of kind ``input``; the person's answer goes back on the
same task and context with a messageId derived from the approval id, exactly once, also
across a worker crash. Against real a2a-sdk agents on loopback, on both databases."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from a2a.helpers import new_text_part

from podium.agents.a2a.client import A2AAgent
from podium.agents.a2a.hosting import AgentServer, HostedAgent, Incoming, TaskExecutor, Updater
from podium.agents.base import AgentError
from podium.agents.registry.resolver import LocalAgents
from podium.domain.definition import parse_definition
from podium.engine.launcher import launch
from podium.storage.checkpoints import answer_message_id
from podium.storage.store import SqlStore
from tests.agents.conftest import FakeStep
from tests.support import fast_settings, running_worker, wait_for, wait_terminal


class Interviewer(TaskExecutor):
    """Asks "Which language?" on a new task; completes on an answer it knows, rejects any
    other. Records every message it receives (by message id)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.messages: Counter[str] = Counter()
        self.asked: set[str] = set()
        self.answers: list[tuple[str, str, str]] = []  # (task, context, text)

    async def work(self, incoming: Incoming, updater: Updater) -> None:
        with self._lock:
            self.messages[incoming.message_id] += 1
            first = incoming.task_id not in self.asked
            self.asked.add(incoming.task_id)
        if first:
            await updater.requires_input(
                updater.new_agent_message([new_text_part("Which language?")])
            )
            return
        answer = incoming.text or str(incoming.data.get("language", ""))
        with self._lock:
            self.answers.append((incoming.task_id, incoming.context_id, answer))
        if answer.lower() in ("french", "english"):
            await updater.add_artifact([new_text_part(f"answering in {answer}")], name="answer")
            return
        await updater.reject(updater.new_agent_message([new_text_part(f"no {answer}")]))


class Gatekeeper(TaskExecutor):
    """Asks for authorization (``AUTH_REQUIRED``) on a new task; completes once it is sent
    the right token, rejects any other. Records every message it receives (by message id)."""

    TOKEN = "open-sesame"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.messages: Counter[str] = Counter()
        self.asked: set[str] = set()
        self.tokens: list[tuple[str, str, str]] = []  # (task, context, token)

    async def work(self, incoming: Incoming, updater: Updater) -> None:
        with self._lock:
            self.messages[incoming.message_id] += 1
            first = incoming.task_id not in self.asked
            self.asked.add(incoming.task_id)
        if first:
            await updater.requires_auth(
                updater.new_agent_message([new_text_part("Sign in to the calendar")])
            )
            return
        token = incoming.text or str(incoming.data.get("token", ""))
        with self._lock:
            self.tokens.append((incoming.task_id, incoming.context_id, token))
        if token == self.TOKEN:
            await updater.add_artifact([new_text_part("calendar booked")], name="booking")
            return
        await updater.reject(updater.new_agent_message([new_text_part("bad token")]))


ASKS = """
metadata: {name: interview, version: 1.0.0}
orchestration:
  steps:
    - {id: ask, agent: interviewer, input: {text: "write a greeting"}}
    - {id: after, agent: echo, depends_on: [ask], input: {got: "{{ steps.ask.output.text }}"}}
"""


@pytest.fixture(scope="module")
def interviewer() -> Iterator[tuple[Interviewer, str]]:
    executor = Interviewer()
    hosted = HostedAgent(path="interviewer", executor=executor, description="asks")
    with AgentServer([hosted]) as server:
        yield executor, server.url("interviewer")


GUARDED = """
metadata: {name: guarded, version: 1.0.0}
orchestration:
  steps:
    - {id: book, agent: gatekeeper, input: {text: "book a meeting"}}
    - {id: after, agent: echo, depends_on: [book], input: {got: "{{ steps.book.output.text }}"}}
"""


@pytest.fixture(scope="module")
def gatekeeper() -> Iterator[tuple[Gatekeeper, str]]:
    executor = Gatekeeper()
    hosted = HostedAgent(path="gatekeeper", executor=executor, description="asks for auth")
    with AgentServer([hosted]) as server:
        yield executor, server.url("gatekeeper")


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    s = SqlStore.open(db_url)
    yield s
    s.close()


def resolver(url: str, slug: str = "interviewer") -> LocalAgents:
    agents = LocalAgents()
    agents.add(A2AAgent(slug, url, poll_interval=0.02))
    return agents


async def asked(store: SqlStore, db_url: str, url: str) -> tuple[str, Any]:
    run_id = launch(store, parse_definition(ASKS), {}, organization="acme")
    async with running_worker(store, fast_settings(db_url), resolver(url)):
        await wait_for(lambda: store.get_run(run_id).status, lambda s: s == "checkpoint")
    (approval,) = store.pending_approvals(run_id)
    return run_id, approval


async def test_input_required_becomes_an_input_approval_and_the_answer_completes_the_task(
    store: SqlStore, db_url: str, interviewer: tuple[Interviewer, str]
) -> None:
    executor, url = interviewer
    run_id, approval = await asked(store, db_url, url)
    assert approval.kind == "input"
    assert approval.question == "Which language?"
    assert approval.options == ["respond", "abort"]
    task_id = approval.details["a2a"]["taskId"]
    context_id = approval.details["a2a"]["contextId"]
    assert approval.conversation_id == context_id
    step = next(s for s in store.steps_of(run_id) if s.step_id == "ask")
    assert step.status == "checkpoint_pending"
    assert step.metadata["runtime"]["a2a"]["taskId"] == task_id

    store.decide_approval(
        approval.id,
        organization="acme",
        decision="respond",
        actor="alice",
        response={"text": "French"},
    )
    async with running_worker(store, fast_settings(db_url), resolver(url)):
        run = await wait_terminal(store, run_id)
    assert run.status == "completed"
    assert (task_id, context_id, "French") in executor.answers
    assert executor.messages[answer_message_id(approval.id)] == 1
    outputs = {s.step_id: s.output for s in store.steps_of(run_id)}
    assert outputs["ask"]["output"]["text"] == "answering in French"
    assert outputs["ask"]["a2a"]["taskId"] == task_id


async def test_an_answer_the_agent_refuses_rejects_the_task(
    store: SqlStore, db_url: str, interviewer: tuple[Interviewer, str]
) -> None:
    _, url = interviewer
    run_id, approval = await asked(store, db_url, url)
    store.decide_approval(
        approval.id,
        organization="acme",
        decision="respond",
        actor="bob",
        response={"text": "Klingon"},
    )
    async with running_worker(store, fast_settings(db_url), resolver(url)):
        run = await wait_terminal(store, run_id)
    assert run.status == "failed"
    step = next(s for s in store.steps_of(run_id) if s.step_id == "ask")
    assert step.error is not None
    assert step.error["code"] == "agent_rejected"


async def test_the_answer_is_sent_once_across_a_crash_before_and_after_sending(
    interviewer: tuple[Interviewer, str],
) -> None:
    """A worker that died before sending the answer sends it on re-attach; one that died
    after sending it finds it in the task's history and does not send it again."""
    executor, url = interviewer
    agent = A2AAgent("interviewer", url, poll_interval=0.02)
    step = FakeStep()
    first = step.context(slug="interviewer")
    with pytest.raises(AgentError) as asking:
        await agent.invoke({"text": "hi"}, first)
    assert asking.value.code == "agent_input_required"
    a2a = dict(step.runtime["a2a"])
    a2a["answer"] = {"approvalId": "a-1", "messageId": answer_message_id("a-1"), "text": "English"}
    # crash before sending: the reclaimed attempt sends the answer
    done = await agent.invoke(
        {"text": "hi"}, step.context(slug="interviewer", runtime={"a2a": a2a})
    )
    assert done["output"]["text"] == "answering in English"
    assert executor.messages[answer_message_id("a-1")] == 1
    # crash after sending (before the result was recorded): not sent again
    again = await agent.invoke(
        {"text": "hi"}, step.context(slug="interviewer", runtime={"a2a": a2a})
    )
    assert again["output"]["text"] == "answering in English"
    assert again["a2a"]["taskId"] == a2a["taskId"]
    assert executor.messages[answer_message_id("a-1")] == 1


async def test_abort_of_an_input_approval_aborts_the_run(
    store: SqlStore, db_url: str, interviewer: tuple[Interviewer, str]
) -> None:
    _, url = interviewer
    run_id, approval = await asked(store, db_url, url)
    decided = store.decide_approval(approval.id, organization="acme", decision="abort", actor="x")
    assert decided.run_status == "aborted"
    assert store.get_run(run_id).status == "aborted"
    assert store.get_approval(approval.id).status == "rejected"


async def test_auth_required_becomes_an_input_approval_and_the_answer_completes_the_task(
    store: SqlStore, db_url: str, gatekeeper: tuple[Gatekeeper, str]
) -> None:
    """AUTH_REQUIRED is held like INPUT_REQUIRED: the step is checkpoint_pending with an
    approval of kind input; the person's answer goes back on the same task and context,
    once, and the task completes."""
    executor, url = gatekeeper
    agents = resolver(url, "gatekeeper")
    run_id = launch(store, parse_definition(GUARDED), {}, organization="acme")
    async with running_worker(store, fast_settings(db_url), agents):
        await wait_for(lambda: store.get_run(run_id).status, lambda s: s == "checkpoint")
    (approval,) = store.pending_approvals(run_id)
    assert approval.kind == "input"
    assert approval.question == "Sign in to the calendar"
    assert approval.options == ["respond", "abort"]
    assert approval.details["state"] == "AUTH_REQUIRED"
    task_id = approval.details["a2a"]["taskId"]
    context_id = approval.details["a2a"]["contextId"]
    assert approval.conversation_id == context_id
    step = next(s for s in store.steps_of(run_id) if s.step_id == "book")
    assert step.status == "checkpoint_pending"
    assert step.metadata["runtime"]["a2a"]["taskId"] == task_id

    decided = store.decide_approval(
        approval.id,
        organization="acme",
        decision="respond",
        actor="alice",
        response={"text": Gatekeeper.TOKEN},
    )
    assert decided.approval.status == "approved"
    async with running_worker(store, fast_settings(db_url), agents):
        run = await wait_terminal(store, run_id)
    assert run.status == "completed"
    assert executor.tokens.count((task_id, context_id, Gatekeeper.TOKEN)) == 1
    assert executor.messages[answer_message_id(approval.id)] == 1
    outputs = {s.step_id: s.output for s in store.steps_of(run_id)}
    assert outputs["book"]["output"]["text"] == "calendar booked"
    assert outputs["book"]["a2a"]["taskId"] == task_id
    assert outputs["after"]["output"] == {"got": "calendar booked"}
