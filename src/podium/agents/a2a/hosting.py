"""Serving A2A agents built with the ``a2a-sdk`` server classes: the demo agents of
``podium agents demo`` and the agents the tests talk to.

:class:`AgentServer` hosts several agents on one port, each under its own path with its own
card: the agent ``summarizer`` of a server at ``http://127.0.0.1:9700`` has base URL
``http://127.0.0.1:9700/summarizer``, card ``.../summarizer/.well-known/agent-card.json``
and takes JSON-RPC calls at ``.../summarizer/``. An agent speaks A2A v1.0 or v0.3: a v0.3
agent publishes a v0.3 card (``url``, ``protocolVersion: 0.3.0``) and answers only the v0.3
JSON-RPC methods (``message/send``, ``tasks/get``, ...). An agent may take HTTP+JSON (REST)
calls instead of JSON-RPC (``binding``).

:class:`TaskExecutor` is the agent side of one task per message: subclasses implement
:meth:`TaskExecutor.work` with an :class:`Updater` (a ``TaskUpdater``) at hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from a2a.compat.v0_3.conversions import to_compat_agent_card
from a2a.helpers import get_data_parts
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import (
    create_agent_card_routes,
    create_jsonrpc_routes,
    create_rest_routes,
)
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    Message,
    Task,
    TaskState,
    TaskStatus,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from podium.agents.a2a.card import CARD_PATH
from podium.agents.a2a.results import SETTLED, message_text, struct_to_dict, whole_numbers


@dataclass(frozen=True)
class Incoming:
    """The message a :class:`TaskExecutor` works on, decoded."""

    text: str  # its text parts, joined with newlines
    data: dict[str, Any]  # its data parts that are objects, merged
    metadata: dict[str, Any]
    message_id: str
    task_id: str
    context_id: str

    @property
    def key(self) -> str:
        """The sender's idempotency key (Podium's ``metadata.idempotencyKey``), else the
        message id."""
        return str(self.metadata.get("idempotencyKey") or self.message_id)


def decode(context: RequestContext) -> Incoming:
    message = context.message or Message()
    data: dict[str, Any] = {}
    for value in get_data_parts(list(message.parts)):
        if isinstance(value, dict):
            data.update(whole_numbers(value))
    return Incoming(
        text=message_text(message),
        data=data,
        metadata=struct_to_dict(message.metadata),
        message_id=message.message_id,
        task_id=context.task_id or "",
        context_id=context.context_id or "",
    )


class Updater(TaskUpdater):
    """A :class:`TaskUpdater` that remembers the last state it published."""

    state: int = TaskState.TASK_STATE_SUBMITTED

    async def update_status(
        self,
        state: TaskState,
        message: Message | None = None,
        timestamp: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        await super().update_status(state, message, timestamp, metadata)
        self.state = state


class TaskExecutor(AgentExecutor):
    """One task per message: publishes the task (``SUBMITTED``), moves it to ``WORKING``,
    runs :meth:`work`, and completes it unless ``work`` settled it (including
    ``INPUT_REQUIRED`` and ``AUTH_REQUIRED``). A cancel request cancels ``work`` and settles
    the task ``CANCELED``."""

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        incoming = decode(context)
        if context.current_task is None:
            await event_queue.enqueue_event(
                Task(
                    id=incoming.task_id,
                    context_id=incoming.context_id,
                    status=TaskStatus(state=TaskState.TASK_STATE_SUBMITTED),
                    history=[context.message] if context.message else [],
                )
            )
        updater = Updater(event_queue, incoming.task_id, incoming.context_id)
        await updater.start_work()
        await self.work(incoming, updater)
        if updater.state not in SETTLED:
            await updater.complete()

    async def work(self, incoming: Incoming, updater: Updater) -> None:
        """Do the task: add artifacts, report progress, settle it (or return to complete)."""
        raise NotImplementedError

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        await TaskUpdater(event_queue, context.task_id or "", context.context_id or "").cancel()


@dataclass
class HostedAgent:
    """An agent to host: its path under the server, executor and card contents.

    ``version`` may be changed while the server runs: the card served changes with it.
    ``calls`` lists the JSON-RPC method of every request the agent received, in order.
    """

    path: str
    executor: AgentExecutor
    description: str = ""
    skills: Sequence[AgentSkill] = ()
    version: str = "1.0.0"
    streaming: bool = True
    protocol: str = "1.0"  # "1.0" or "0.3"
    binding: str = "JSONRPC"  # or "HTTP+JSON"
    calls: list[str] = field(default_factory=list)

    def card(self, base_url: str) -> AgentCard:
        version = "0.3.0" if self.protocol == "0.3" else "1.0"
        return AgentCard(
            name=self.path,
            description=self.description or self.path,
            version=self.version,
            supported_interfaces=[
                AgentInterface(
                    url=base_url + "/", protocol_binding=self.binding, protocol_version=version
                )
            ],
            capabilities=AgentCapabilities(streaming=self.streaming),
            default_input_modes=["text/plain", "application/json"],
            default_output_modes=["text/plain", "application/json"],
            skills=list(self.skills)
            or [
                AgentSkill(
                    id=self.path,
                    name=self.path,
                    description=self.description or self.path,
                    tags=[self.path],
                )
            ],
        )


def agent_app(hosted: HostedAgent, base_url: str) -> tuple[Starlette, DefaultRequestHandler]:
    """The ASGI app of one agent (mount it at ``base_url``) and its request handler."""
    card = hosted.card(base_url)
    handler = DefaultRequestHandler(
        agent_executor=hosted.executor, task_store=InMemoryTaskStore(), agent_card=card
    )
    legacy = hosted.protocol == "0.3"
    (rpc,) = create_jsonrpc_routes(
        handler, "/", enable_v0_3_compat=legacy, shutdown_grace_period=0.5
    )
    dispatch = rpc.endpoint

    async def endpoint(request: Request) -> Response:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            body = None
        method = str(body.get("method")) if isinstance(body, dict) else ""
        hosted.calls.append(method)
        if legacy and "/" not in method:  # v0.3 methods are message/send, tasks/get, ...
            return JSONResponse(
                {
                    "jsonrpc": "2.0",
                    "id": body.get("id") if isinstance(body, dict) else None,
                    "error": {"code": -32601, "message": f"Method not found: {method}"},
                }
            )
        response: Response = await dispatch(request)
        return response

    async def current_card(_: AgentCard) -> AgentCard:
        served = AgentCard()
        served.CopyFrom(card)
        served.version = hosted.version
        return served

    async def legacy_card(_: Request) -> Response:
        compat = to_compat_agent_card(await current_card(card))
        return JSONResponse(compat.model_dump(by_alias=True, exclude_none=True, mode="json"))

    routes: list[BaseRoute]
    if hosted.binding == "HTTP+JSON":
        rest = Starlette(routes=create_rest_routes(handler, enable_v0_3_compat=legacy))
        # REST calls are recorded as "<HTTP method> <path>"
        routes = [Mount("", app=_recording(hosted, rest))]
    else:
        routes = [Route("/", endpoint, methods=["POST"])]
    if legacy:
        routes.insert(0, Route(CARD_PATH, legacy_card, methods=["GET"]))
    else:
        routes[:0] = create_agent_card_routes(card, card_modifier=current_card)
    return Starlette(routes=routes), handler


def _recording(hosted: HostedAgent, app: ASGIApp) -> ASGIApp:
    """``app``, noting each HTTP request's method and path in ``hosted.calls``."""

    async def record(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            hosted.calls.append(f"{scope['method']} {scope['path']}")
        await app(scope, receive, send)

    return record


class _Server(uvicorn.Server):
    """A uvicorn server that says when it listens (or failed to)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()
        self.on_ready: Callable[[], None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        finally:
            self.ready.set()
        if self.started and self.on_ready is not None:
            self.on_ready()


class AgentServer:
    """Agents served on one port of ``host`` (``port=0``: any free port), each at
    ``<root>/<path>``. Start it in a background thread (:meth:`start` / :meth:`stop`, or
    ``with``), or serve in the calling thread until interrupted (:meth:`run`)."""

    def __init__(self, agents: Sequence[HostedAgent], host: str = "127.0.0.1", port: int = 0):
        self.agents = {a.path: a for a in agents}
        self.host = host
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.port: int = self._socket.getsockname()[1]
        self.root = f"http://{host}:{self.port}"
        self._handlers: list[DefaultRequestHandler] = []
        mounts = []
        for agent in agents:
            app, handler = agent_app(agent, self.url(agent.path))
            mounts.append(Mount(f"/{agent.path}", app=app))
            self._handlers.append(handler)
        app = Starlette(routes=mounts, lifespan=self._lifespan)
        config = uvicorn.Config(
            app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2
        )
        self._server = _Server(config)
        self._thread: threading.Thread | None = None

    @contextlib.asynccontextmanager
    async def _lifespan(self, _: Starlette) -> AsyncIterator[None]:
        yield
        for handler in self._handlers:
            await handler.aclose()

    @property
    def on_ready(self) -> Callable[[], None] | None:
        """Called (in the server's thread) once the server listens."""
        return self._server.on_ready

    @on_ready.setter
    def on_ready(self, callback: Callable[[], None] | None) -> None:
        self._server.on_ready = callback

    def url(self, path: str) -> str:
        """Base URL of the agent at ``path``."""
        return f"{self.root}/{path}"

    @property
    def urls(self) -> dict[str, str]:
        return {path: self.url(path) for path in self.agents}

    def start(self, timeout: float = 10.0) -> AgentServer:
        """Serve in a background thread; return once listening."""
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._server.serve(sockets=[self._socket])),
            name=f"a2a-agents-{self.port}",
            daemon=True,
        )
        self._thread.start()
        if not self._server.ready.wait(timeout) or not self._server.started:
            raise RuntimeError(f"A2A agent server on {self.root} did not start")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._socket.close()

    def run(self) -> None:
        """Serve in this thread until SIGINT or SIGTERM."""
        try:
            self._server.run(sockets=[self._socket])
        finally:
            self._socket.close()

    def __enter__(self) -> AgentServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
