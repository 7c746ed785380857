"""A2A agents for tests, served by the a2a-sdk server on loopback (v1.0 and v0.3, streaming
and not), that record what reaches them.

:class:`Scripted` does what the step input's ``mode`` says:

=========  ===========================================================================
complete   (default) echo the message back: artifact ``echo`` with the text and data the
           agent received, artifact ``extra`` (text "beta", data ``{"y": [1, 2]}``, a
           file part), streamed in two chunks; final message "done"
progress   ``steps`` status updates "step i", then complete
hold       wait until the test opens the gate of the key (:meth:`Scripted.gate`),
           then complete
fail       FAILED with message "boom"
reject     REJECTED with message "not for me"
cancel     CANCELED by the agent itself
input      INPUT_REQUIRED with message "which language?"
auth       AUTH_REQUIRED with message "log in first"
=========  ===========================================================================
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from a2a.helpers import new_data_part, new_text_part, new_url_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.types import Message, Role, TaskState

from podium.agents.a2a.hosting import (
    AgentServer,
    HostedAgent,
    Incoming,
    TaskExecutor,
    Updater,
    decode,
)


class Gate:
    """Opened from any thread; awaited in the server's event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open = False
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def open(self) -> None:
        with self._lock:
            self._open = True
            for loop, event in self._waiters:
                loop.call_soon_threadsafe(event.set)

    async def wait(self) -> None:
        event = asyncio.Event()
        with self._lock:
            if self._open:
                return
            self._waiters.append((asyncio.get_running_loop(), event))
        await event.wait()


class Scripted(TaskExecutor):
    """The scripted test agent (module docstring). Its records are thread-safe and kept per
    idempotency key, so that tests sharing the agent do not see each other."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.received: list[Incoming] = []
        self._by_key: Counter[str] = Counter()
        self._arrived: dict[str, threading.Event] = {}
        self._cancelled: dict[str, threading.Event] = {}
        self._gates: dict[str, Gate] = {}
        self._key_of_task: dict[str, str] = {}

    def messages_for(self, key: str) -> int:
        with self._lock:
            return self._by_key[key]

    def arrived(self, key: str) -> threading.Event:
        """Set once a message with idempotency key ``key`` arrived."""
        with self._lock:
            return self._arrived.setdefault(key, threading.Event())

    def cancelled(self, key: str) -> threading.Event:
        """Set once the agent was asked to cancel the task of key ``key``."""
        with self._lock:
            return self._cancelled.setdefault(key, threading.Event())

    def gate(self, key: str) -> Gate:
        """What ``hold`` tasks of key ``key`` wait for."""
        with self._lock:
            return self._gates.setdefault(key, Gate())

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        incoming = decode(context)
        with self._lock:
            self.received.append(incoming)
            self._by_key[incoming.key] += 1
            self._key_of_task[incoming.task_id] = incoming.key
        self.arrived(incoming.key).set()
        await super().execute(context, event_queue)

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        with self._lock:
            key = self._key_of_task.get(context.task_id or "", "")
        self.cancelled(key).set()
        await super().cancel(context, event_queue)

    async def work(self, incoming: Incoming, updater: Updater) -> None:
        mode = incoming.data.get("mode", "complete")

        def says(text: str) -> Message:
            return updater.new_agent_message([new_text_part(text)])

        if mode == "progress":
            for i in range(1, int(incoming.data.get("steps", 3)) + 1):
                await updater.update_status(TaskState.TASK_STATE_WORKING, says(f"step {i}"))
        elif mode == "hold":
            await self.gate(incoming.key).wait()
        elif mode == "fail":
            await updater.failed(says("boom"))
        elif mode == "reject":
            await updater.reject(says("not for me"))
        elif mode == "cancel":
            await updater.cancel(says("changed my mind"))
        elif mode == "input":
            await updater.requires_input(says("which language?"))
        elif mode == "auth":
            await updater.requires_auth(says("log in first"))
        if updater.state != TaskState.TASK_STATE_WORKING:
            return
        await updater.add_artifact(
            [new_text_part(incoming.text), new_data_part({"x": 1, "received": incoming.data})],
            name="echo",
        )
        await updater.add_artifact(
            [new_text_part("beta")], artifact_id="extra", name="extra", last_chunk=False
        )
        await updater.add_artifact(
            [new_data_part({"y": [1, 2]}), new_url_part("https://example.com/r.pdf", "a/pdf")],
            artifact_id="extra",
            name="extra",
            append=True,
            last_chunk=True,
        )
        await updater.complete(says("done"))


class MessageOnly(AgentExecutor):
    """Answers with a message, no task."""

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        incoming = decode(context)
        await event_queue.enqueue_event(
            Message(
                message_id=f"reply-{incoming.message_id}",
                context_id=incoming.context_id,
                role=Role.ROLE_AGENT,
                parts=[new_text_part(f"re: {incoming.text}"), new_data_part({"n": 3})],
            )
        )

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        return None


@dataclass(frozen=True)
class Flavour:
    """How a test agent is served: protocol version, streaming and binding."""

    path: str
    protocol: str
    streaming: bool
    binding: str = "JSONRPC"


FLAVOURS = (
    Flavour("v1-stream", "1.0", True),
    Flavour("v1-poll", "1.0", False),
    Flavour("v03-stream", "0.3", True),
    Flavour("v03-poll", "0.3", False),
    Flavour("rest-stream", "1.0", True, "HTTP+JSON"),
    Flavour("rest03-poll", "0.3", False, "HTTP+JSON"),
)

_OPERATIONS = {
    "SendMessage": "send",
    "message/send": "send",
    "SendStreamingMessage": "stream",
    "message/stream": "stream",
    "GetTask": "get",
    "tasks/get": "get",
    "SubscribeToTask": "subscribe",
    "tasks/resubscribe": "subscribe",
    "CancelTask": "cancel",
    "tasks/cancel": "cancel",
}


def operation(call: str) -> str:
    """What a recorded call did, whatever the protocol version and binding: ``send``,
    ``stream``, ``get``, ``subscribe``, ``cancel`` (or the call itself)."""
    if call in _OPERATIONS:
        return _OPERATIONS[call]
    method, _, path = call.partition(" ")
    for suffix, name in (
        ("message:send", "send"),
        ("message:stream", "stream"),
        (":subscribe", "subscribe"),
        (":cancel", "cancel"),
    ):
        if path.endswith(suffix):
            return name
    return "get" if method == "GET" and "/tasks/" in path else call


class AgentFarm:
    """One server hosting a :class:`Scripted` agent per flavour, and a message-only one."""

    def __init__(self) -> None:
        self.hosted = {
            f.path: HostedAgent(
                f.path,
                Scripted(),
                streaming=f.streaming,
                protocol=f.protocol,
                binding=f.binding,
                version="1.0.0",
            )
            for f in FLAVOURS
        }
        self.hosted["message-only"] = HostedAgent("message-only", MessageOnly(), streaming=False)
        self.server = AgentServer(list(self.hosted.values()))

    def url(self, path: str) -> str:
        return self.server.url(path)

    def agent(self, path: str) -> Scripted:
        executor = self.hosted[path].executor
        assert isinstance(executor, Scripted)
        return executor

    def calls(self, path: str) -> list[str]:
        """The operations (:func:`operation`) the agent at ``path`` was asked for, in order."""
        return [operation(c) for c in list(self.hosted[path].calls)]


@contextmanager
def serve_agent_farm() -> Iterator[AgentFarm]:
    agents = AgentFarm()
    agents.server.start()
    try:
        yield agents
    finally:
        agents.server.stop()


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port
