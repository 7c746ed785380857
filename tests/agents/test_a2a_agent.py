"""The A2A agent kind against real A2A servers (a2a-sdk, v1.0 and v0.3, streaming and
polling) on loopback: one message per attempt, normalized results, state and transport
mapping, timeouts, cancellation and re-attachment of a reclaimed attempt."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
from typing import Any

import httpx
import pytest

from podium.agents.a2a.client import A2AAgent
from podium.agents.base import AgentError
from podium.errors import LeaseLost
from tests.agents.a2a_servers import FLAVOURS, AgentFarm, closed_port
from tests.agents.conftest import FakeStep, wait_set

PATHS = [f.path for f in FLAVOURS]
STREAMING = [f.path for f in FLAVOURS if f.streaming]
POLLING = [f.path for f in FLAVOURS if not f.streaming]


def agent_for(farm: AgentFarm, path: str, **options: Any) -> A2AAgent:
    return A2AAgent("remote", farm.url(path), poll_interval=0.02, **options)


async def started(task: asyncio.Task[Any], step: FakeStep, timeout: float = 10.0) -> None:
    """Wait until the call recorded its A2A task (it is then waiting on it)."""
    saved = asyncio.ensure_future(step.saved.wait())
    done, _ = await asyncio.wait(
        {saved, task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
    )
    saved.cancel()
    assert saved in done, f"no task recorded within {timeout}s (call finished: {task in done})"


# -- success ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
async def test_completed_task_becomes_a_normalized_task_response(
    farm: AgentFarm, path: str
) -> None:
    step = FakeStep()
    input = {"userMessage": "hello", "n": 3, "mode": "complete"}

    result = await agent_for(farm, path).invoke(input, step.context())

    saved = step.runtime["a2a"]
    assert result["success"] is True
    assert result["error"] is None
    assert result["output"] == {
        "text": "hello\nbeta",
        "data": {"x": 1, "received": input, "y": [1, 2]},
    }
    echo, extra = result["artifacts"]
    assert echo["name"] == "echo"
    assert echo["parts"] == [
        {"kind": "text", "text": "hello"},
        {"kind": "data", "data": {"x": 1, "received": input}},
    ]
    assert extra == {
        "artifactId": "extra",
        "name": "extra",
        "description": None,
        "parts": [
            {"kind": "text", "text": "beta"},
            {"kind": "data", "data": {"y": [1, 2]}},
            {"kind": "file", "url": "https://example.com/r.pdf", "mediaType": "a/pdf"},
        ],
        "text": "beta",
    }
    assert result["message"] == "done"
    assert result["agent"] == {"slug": "remote", "cardVersion": "1.0.0"}
    assert result["a2a"] == {
        "taskId": saved["taskId"],
        "contextId": saved["contextId"],
        "state": "COMPLETED",
    }
    assert result["timings"]["durationMs"] > 0
    assert saved == {
        "taskId": saved["taskId"],
        "contextId": saved["contextId"],
        "agentUrl": farm.url(path),
        "agentSlug": "remote",
        "messageId": f"{step.key}:1",
        "attempt": 1,
        "generation": 1,
    }


@pytest.mark.parametrize("path", PATHS)
async def test_one_message_carries_the_input_as_text_and_data_with_the_idempotency_key(
    farm: AgentFarm, path: str
) -> None:
    step = FakeStep()
    input = {"text": "bonjour", "items": [1, 2], "nested": {"ok": True}}

    await agent_for(farm, path).invoke(input, step.context(attempt=2))

    assert farm.agent(path).messages_for(step.key) == 1
    (incoming,) = [m for m in farm.agent(path).received if m.key == step.key]
    assert incoming.text == "bonjour"
    assert incoming.data == input
    assert incoming.message_id == f"{step.key}:2"
    assert incoming.metadata["idempotencyKey"] == step.key
    assert incoming.metadata["podium"] == {
        "runId": step.run_id,
        "stepId": "work",
        "stepRecordId": step.step_record_id,
        "organization": "acme",
        "attempt": 2,
        "generation": 1,
    }


@pytest.mark.parametrize("path", PATHS)
async def test_streaming_agents_stream_and_others_are_polled(farm: AgentFarm, path: str) -> None:
    before = len(farm.calls(path))
    await agent_for(farm, path).invoke({"text": "x"}, FakeStep().context())
    calls = farm.calls(path)[before:]
    if path in STREAMING:
        assert calls == ["stream", "get"]  # the settled task is read back whole
    else:
        assert calls[0] == "send"
        assert set(calls[1:]) == {"get"}


@pytest.mark.parametrize("path", STREAMING)
async def test_streaming_progress_is_reported_while_waiting(farm: AgentFarm, path: str) -> None:
    reports: list[dict[str, Any]] = []

    async def progress(context: Any, report: dict[str, Any]) -> None:
        reports.append(report)

    result = await agent_for(farm, path, on_progress=progress).invoke(
        {"text": "x", "mode": "progress", "steps": 3}, FakeStep().context()
    )

    said = [r["message"] for r in reports if r["message"]]
    assert said == ["step 1", "step 2", "step 3"]
    assert {r["state"] for r in reports} <= {"SUBMITTED", "WORKING"}
    assert {r["taskId"] for r in reports} == {result["a2a"]["taskId"]}
    assert result["success"] is True


async def test_a_message_only_reply_completes_the_step(farm: AgentFarm) -> None:
    result = await agent_for(farm, "message-only").invoke({"text": "hi"}, FakeStep().context())
    assert result["output"] == {"text": "re: hi", "data": {"n": 3}}
    assert result["message"] == "re: hi"
    assert result["artifacts"] == []
    assert result["a2a"]["state"] == "COMPLETED"
    assert result["a2a"]["taskId"] is None


# -- settled states that are not success ----------------------------------------------------

SETTLED_ERRORS = {
    "fail": ("agent_execution_error", True, "boom", "FAILED"),
    "reject": ("agent_rejected", False, "not for me", "REJECTED"),
    "cancel": ("agent_execution_error", False, "changed my mind", "CANCELED"),
    "input": ("agent_input_required", False, "which language?", "INPUT_REQUIRED"),
    "auth": ("agent_auth_required", False, "log in first", "AUTH_REQUIRED"),
}


@pytest.mark.parametrize("mode", list(SETTLED_ERRORS))
@pytest.mark.parametrize("path", PATHS)
async def test_settled_states_map_to_classified_errors(
    farm: AgentFarm, path: str, mode: str
) -> None:
    code, retryable, said, state = SETTLED_ERRORS[mode]
    step = FakeStep()

    with pytest.raises(AgentError) as caught:
        await agent_for(farm, path).invoke({"text": "x", "mode": mode}, step.context())

    error = caught.value
    assert (error.code, error.retryable) == (code, retryable)
    assert error.details["agentMessage"] == said
    assert error.details["a2a"] == {
        "taskId": step.runtime["a2a"]["taskId"],
        "contextId": step.runtime["a2a"]["contextId"],
        "state": state,
    }
    if mode == "cancel":
        assert error.message == "task canceled by the agent"
    else:
        assert said in error.message


# -- time limits and cancellation ---------------------------------------------------------


@pytest.mark.parametrize("path", ["v1-stream", "v03-poll"])
async def test_the_agent_timeout_fails_the_attempt_and_cancels_the_task(
    farm: AgentFarm, path: str
) -> None:
    step = FakeStep()
    agent = agent_for(farm, path, timeout=0.5)

    with pytest.raises(AgentError) as caught:
        await agent.invoke({"text": "x", "mode": "hold"}, step.context())

    assert caught.value.code == "agent_timeout"
    assert caught.value.retryable is True
    assert caught.value.details["timeoutSeconds"] == 0.5
    assert caught.value.details["a2a"]["taskId"] == step.runtime["a2a"]["taskId"]
    assert await wait_set(farm.agent(path).cancelled(step.key))


@pytest.mark.parametrize("path", PATHS)
async def test_cancelling_the_call_cancels_the_agent_task(farm: AgentFarm, path: str) -> None:
    """What the worker does when the run is aborted or the lease is lost."""
    step = FakeStep()
    call = asyncio.create_task(
        agent_for(farm, path).invoke({"text": "x", "mode": "hold"}, step.context())
    )
    await started(call, step)

    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call

    assert await wait_set(farm.agent(path).cancelled(step.key))
    assert farm.agent(path).messages_for(step.key) == 1


async def test_the_step_timeout_around_the_call_cancels_the_agent_task(farm: AgentFarm) -> None:
    """The executor runs ``invoke`` inside ``asyncio.timeout(step timeout)``."""
    step = FakeStep()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await agent_for(farm, "v1-poll").invoke({"mode": "hold"}, step.context())
    assert await wait_set(farm.agent("v1-poll").cancelled(step.key))


async def test_a_lost_lease_when_recording_the_task_cancels_it(farm: AgentFarm) -> None:
    step = FakeStep()

    async def fenced(key: str, value: Any) -> None:
        raise LeaseLost("step taken back")

    context = dataclasses.replace(step.context(), save_runtime=fenced)
    with pytest.raises(LeaseLost):
        await agent_for(farm, "v1-stream").invoke({"mode": "hold"}, context)
    assert await wait_set(farm.agent("v1-stream").cancelled(step.key))


# -- re-attachment --------------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
async def test_a_reclaimed_attempt_reattaches_instead_of_sending_again(
    farm: AgentFarm, path: str
) -> None:
    """Worker A sent the message and recorded the task, then (as far as the step knows)
    died; worker B claims the same attempt and finds the record: no second message."""
    step = FakeStep()
    scripted = farm.agent(path)
    first = asyncio.create_task(
        agent_for(farm, path).invoke({"text": "x", "mode": "hold"}, step.context())
    )
    await started(first, step)
    before = len(farm.calls(path))

    second = asyncio.create_task(
        agent_for(farm, path).invoke(
            {"text": "x", "mode": "hold"}, step.context(runtime=dict(step.runtime))
        )
    )
    deadline = asyncio.get_running_loop().time() + 10
    while "get" not in farm.calls(path)[before:]:  # B asked about the task
        assert asyncio.get_running_loop().time() < deadline, farm.calls(path)[before:]
        await asyncio.sleep(0.01)
    scripted.gate(step.key).open()
    a, b = await asyncio.wait_for(asyncio.gather(first, second), 10)

    assert scripted.messages_for(step.key) == 1
    assert b["a2a"] == a["a2a"]
    assert b["output"] == a["output"]
    assert step.saves == 1  # B did not record the task again
    assert "send" not in farm.calls(path)[before:]
    assert "stream" not in farm.calls(path)[before:]
    if path in STREAMING:
        assert "subscribe" in farm.calls(path)[before:]


@pytest.mark.parametrize("path", ["v1-stream", "v03-poll"])
async def test_reattaching_to_a_finished_task_returns_its_result(
    farm: AgentFarm, path: str
) -> None:
    step = FakeStep()
    done = await agent_for(farm, path).invoke({"text": "once"}, step.context())

    again = await agent_for(farm, path).invoke(
        {"text": "once"}, step.context(runtime=dict(step.runtime))
    )

    assert farm.agent(path).messages_for(step.key) == 1
    assert again["a2a"] == done["a2a"]
    assert again["output"] == done["output"]


@pytest.mark.parametrize("path", ["v1-stream", "v03-poll"])
async def test_a_task_the_agent_does_not_know_is_sent_anew(farm: AgentFarm, path: str) -> None:
    step = FakeStep()
    stale = {
        "taskId": "no-such-task",
        "contextId": "no-such-context",
        "agentUrl": farm.url(path),
        "attempt": 1,
        "generation": 1,
    }

    result = await agent_for(farm, path).invoke({"text": "x"}, step.context(runtime={"a2a": stale}))

    assert farm.agent(path).messages_for(step.key) == 1
    assert result["a2a"]["taskId"] not in (None, "no-such-task")
    assert step.runtime["a2a"]["taskId"] == result["a2a"]["taskId"]


@pytest.mark.parametrize(
    "change", [{"attempt": 1}, {"generation": 0}, {"agentUrl": "http://elsewhere.invalid"}]
)
async def test_a_task_of_another_attempt_or_agent_is_not_reattached(
    farm: AgentFarm, change: dict[str, Any]
) -> None:
    """A retry (next attempt), an operator's new generation or another agent sends anew."""
    step = FakeStep()
    await agent_for(farm, "v1-poll").invoke({"text": "x"}, step.context(attempt=1))
    previous = {**step.runtime["a2a"], "attempt": 2, **change}

    result = await agent_for(farm, "v1-poll").invoke(
        {"text": "x"}, step.context(attempt=2, runtime={"a2a": previous})
    )

    assert farm.agent("v1-poll").messages_for(step.key) == 2
    assert result["a2a"]["taskId"] != previous["taskId"]
    ids = sorted(m.message_id for m in farm.agent("v1-poll").received if m.key == step.key)
    assert ids == [f"{step.key}:1", f"{step.key}:2"]


# -- transport failures ---------------------------------------------------------------------


async def test_a_closed_port_is_unreachable_and_retryable() -> None:
    agent = A2AAgent("gone", f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(AgentError) as caught:
        await agent.invoke({"text": "x"}, FakeStep().context())
    assert (caught.value.code, caught.value.retryable) == ("agent_unreachable", True)


async def test_an_agent_gone_after_its_card_was_cached_is_unreachable(farm: AgentFarm) -> None:
    card = await A2AAgent("x", farm.url("v1-poll")).refresh_card()
    moved = {**card, "url": f"http://127.0.0.1:{closed_port()}/"}
    agent = A2AAgent("remote", farm.url("v1-poll"), card=moved)
    with pytest.raises(AgentError) as caught:
        await agent.invoke({"text": "x"}, FakeStep().context())
    assert (caught.value.code, caught.value.retryable) == ("agent_unreachable", True)


async def test_no_card_at_the_url_is_agent_not_found(farm: AgentFarm) -> None:
    agent = A2AAgent("nobody", farm.server.url("nobody-here"))
    with pytest.raises(AgentError) as caught:
        await agent.invoke({"text": "x"}, FakeStep().context())
    assert (caught.value.code, caught.value.retryable) == ("agent_not_found", False)
    assert caught.value.details["httpStatus"] == 404


CARD = {
    "name": "mock",
    "version": "9",
    "url": "http://mock.test/rpc",
    "protocolVersion": "1.0",
    "capabilities": {"streaming": False},
}


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (500, "agent_execution_error", True),
        (503, "agent_execution_error", True),
        (429, "agent_execution_error", True),
        (400, "agent_execution_error", False),
        (401, "agent_auth_required", False),
        (403, "agent_auth_required", False),
    ],
)
async def test_http_errors_are_classified(status: int, code: str, retryable: bool) -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url}")
        return httpx.Response(status, json={"error": "nope"})

    agent = A2AAgent("mock", "http://mock.test", card=CARD, transport=httpx.MockTransport(answer))
    with pytest.raises(AgentError) as caught:
        await agent.invoke({"text": "x"}, FakeStep().context())

    assert (caught.value.code, caught.value.retryable) == (code, retryable)
    assert caught.value.details["httpStatus"] == status
    assert seen == ["POST http://mock.test/rpc"]


async def test_the_connect_hook_sees_every_request_and_can_refuse(farm: AgentFarm) -> None:
    urls: list[str] = []

    async def allow(url: str) -> None:
        urls.append(url)

    await A2AAgent("remote", farm.url("v1-poll"), connect_hook=allow).invoke(
        {"text": "x"}, FakeStep().context()
    )
    assert urls[0] == farm.url("v1-poll") + "/.well-known/agent-card.json"
    assert set(urls[1:]) == {farm.url("v1-poll") + "/"}

    async def refuse(url: str) -> None:
        raise AgentError("routing_showstopper", f"blocked {url}", retryable=False)

    before = len(farm.calls("v1-poll"))
    with pytest.raises(AgentError) as caught:
        await A2AAgent("remote", farm.url("v1-poll"), connect_hook=refuse).invoke(
            {"text": "x"}, FakeStep().context()
        )
    assert caught.value.code == "routing_showstopper"
    assert farm.calls("v1-poll")[before:] == []


async def test_a_card_that_is_not_json_fails_without_retry() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, text="<html>"))
    with pytest.raises(AgentError) as caught:
        await A2AAgent("mock", "http://mock.test", transport=transport).invoke(
            {"text": "x"}, FakeStep().context()
        )
    assert (caught.value.code, caught.value.retryable) == ("agent_execution_error", False)


async def test_a_malformed_rpc_answer_is_a_retryable_execution_error() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, text=json.dumps([1])))
    with pytest.raises(AgentError) as caught:
        await A2AAgent("mock", "http://mock.test", card=CARD, transport=transport).invoke(
            {"text": "x"}, FakeStep().context()
        )
    assert (caught.value.code, caught.value.retryable) == ("agent_execution_error", True)


class BreakFirstStream(httpx.AsyncBaseTransport):
    """The network, except that the first message stream breaks after its first chunk."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.broken = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if self.broken or b"SendStreamingMessage" not in request.content:
            return response
        self.broken = True
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=BrokenAfterFirstChunk(response.stream, request),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


class BrokenAfterFirstChunk(httpx.AsyncByteStream):
    def __init__(self, inner: Any, request: httpx.Request) -> None:
        self.inner = inner
        self.request = request

    async def __aiter__(self) -> Any:
        async for chunk in self.inner:
            yield chunk
            break
        raise httpx.ReadError("connection reset by peer", request=self.request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_broken_stream_is_followed_up_without_sending_again(farm: AgentFarm) -> None:
    step = FakeStep()
    before = len(farm.calls("v1-stream"))
    transport = BreakFirstStream()
    agent = agent_for(farm, "v1-stream", transport=transport)
    call = asyncio.create_task(agent.invoke({"text": "x", "mode": "hold"}, step.context()))
    deadline = asyncio.get_running_loop().time() + 10
    while "subscribe" not in farm.calls("v1-stream")[before:]:
        assert asyncio.get_running_loop().time() < deadline, farm.calls("v1-stream")[before:]
        assert not call.done(), call
        await asyncio.sleep(0.01)
    farm.agent("v1-stream").gate(step.key).open()

    result = await asyncio.wait_for(call, 10)

    assert transport.broken
    assert result["output"]["text"] == "x\nbeta"
    assert farm.agent("v1-stream").messages_for(step.key) == 1
    assert farm.calls("v1-stream")[before:].count("stream") == 1
    # the transport is the caller's: every call shares it, none closes it
    again = await agent.invoke({"text": "y"}, FakeStep().context())
    assert again["output"]["text"] == "y\nbeta"
    await transport.aclose()


async def test_a_request_left_unanswered_times_out_after_the_request_timeout() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # connections complete in the backlog; nothing ever answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        agent = A2AAgent("mute", url, card={**CARD, "url": url + "/"}, request_timeout=0.3)
        with pytest.raises(AgentError) as caught:
            await asyncio.wait_for(agent.invoke({"text": "x"}, FakeStep().context()), 10)
    assert (caught.value.code, caught.value.retryable) == ("agent_timeout", True)
