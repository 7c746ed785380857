"""Helpers for the stream tests (no tests here): real uvicorn servers (in a thread of this
process, or in a subprocess), an incremental Server-Sent Events parser with EventSource's
rules, and a client that disconnects at random points and resumes with ``Last-Event-ID``."""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from podium.api.app import create_app
from podium.engine.launcher import launch
from podium.service.views import EventView
from podium.settings import Settings
from podium.storage.store import SqlStore
from tests.support import definition

TERMINAL_EVENTS = ("complete", "error")


def chain(n: int, *, name: str = "stream-chain", seconds: float = 0.02) -> str:
    """A definition of ``n`` chained steps of the ``sleep`` agent."""
    lines = [f"metadata: {{name: {name}, version: 1.0.0}}", "orchestration:", "  steps:"]
    for i in range(n):
        dep = f", depends_on: [s{i - 1}]" if i else ""
        lines.append(f"    - {{id: s{i}, agent: sleep, input: {{seconds: {seconds}}}{dep}}}")
    return "\n".join(lines)


@asynccontextmanager
async def server(
    store: SqlStore, settings: Settings, *, worker: bool, **overrides: Any
) -> AsyncIterator[str]:
    """``create_app`` on ``store`` (``settings`` with ``overrides``) served in a thread."""
    app = create_app(settings.model_copy(update=overrides), store=store, worker=worker)
    async with serve_in_thread(app) as base:
        yield base


async def launched(store: SqlStore, doc: str, organization: str = "acme") -> str:
    """Launch ``doc`` (a definition document) in ``organization``; returns the run id."""
    return await asyncio.to_thread(launch, store, definition(doc), {}, organization=organization)


def stream_url(base: str, run_id: str, query: str = "") -> str:
    return f"{base}/api/orchestrations/{run_id}/stream{query}"


def stored_log(store: SqlStore, run_id: str) -> list[dict[str, Any]]:
    """The run's whole event log as the API shows it."""
    return [
        EventView.of(e).model_dump(mode="json") for e in store.events_after(run_id, 0, 1_000_000)
    ]


async def until(probe: Callable[[], bool], *, within: float = 10.0, what: str = "") -> None:
    """Poll ``probe`` until it holds; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s: {what or probe}")
        await asyncio.sleep(0.01)


# -- servers ------------------------------------------------------------------------------


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@asynccontextmanager
async def serve_in_thread(app: FastAPI) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn (its own event loop, in a thread) on a free loopback port;
    yields the base URL."""
    sock = free_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2, lifespan="on")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        await until(lambda: server.started or not thread.is_alive(), what="server start")
        assert server.started, "the server did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 15)
        sock.close()


SERVER_SCRIPT = """
import json, socket, sys
import uvicorn
from podium.api.app import create_app
from podium.settings import Settings

settings = Settings(**json.loads(sys.argv[1]))
app = create_app(settings, worker=sys.argv[2] == "worker")
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", 0))
print(sock.getsockname()[1], flush=True)
config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2)
uvicorn.Server(config).run(sockets=[sock])
"""


@contextmanager
def server_process(settings: dict[str, Any], *, worker: bool) -> Iterator[str]:
    """``podium serve`` as its own process (``create_app`` under uvicorn) on a free loopback
    port; yields the base URL once it answers ``/healthz``."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER_SCRIPT, json.dumps(settings), "worker" if worker else "api"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip().isdigit(), f"the server did not start (exit {proc.poll()})"
        url = f"http://127.0.0.1:{int(line)}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, f"the server exited with {proc.returncode}"
            assert time.monotonic() < deadline, "the server did not become healthy"
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# -- Server-Sent Events -------------------------------------------------------------------


@dataclass
class Message:
    """One dispatched SSE event, or a comment (``event`` is None then)."""

    event: str | None
    data: str = ""
    id: str | None = None
    comment: str | None = None
    at: float = 0.0  # time.monotonic() when its last byte arrived

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class SseParser:
    """Incremental parser following the EventSource processing model: an event is
    dispatched at the blank line that ends it, and only then does it update the last
    event id. Bytes of an event cut off by a disconnect are never dispatched."""

    last_id: str | None = None
    _buffer: str = ""
    _event: str = ""
    _data: list[str] = field(default_factory=list)
    _id: str | None = None

    @property
    def partial(self) -> bool:
        """Part of an event arrived but not its end."""
        return bool(self._buffer or self._data or self._event or self._id is not None)

    def feed(self, chunk: bytes) -> list[Message]:
        now = time.monotonic()
        self._buffer += chunk.decode()
        out: list[Message] = []
        while True:
            cut = min(
                (i for i in (self._buffer.find("\r\n"), self._buffer.find("\n")) if i >= 0),
                default=-1,
            )
            if cut < 0:
                return out
            line = self._buffer[:cut]
            self._buffer = self._buffer[cut + (2 if self._buffer[cut] == "\r" else 1) :]
            message = self._line(line, now)
            if message is not None:
                out.append(message)

    def _line(self, line: str, now: float) -> Message | None:
        if not line:
            return self._dispatch(now)
        if line.startswith(":"):
            return Message(event=None, comment=line[1:].strip(), at=now)
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value
        return None

    def _dispatch(self, now: float) -> Message | None:
        if self._id is not None:
            self.last_id = self._id
        event, data, event_id = self._event, self._data, self._id
        self._event, self._data, self._id = "", [], None
        if not data:
            return None
        return Message(event=event or "message", data="\n".join(data), id=event_id, at=now)


@dataclass
class Follow:
    """What a reconnecting client collected."""

    events: list[Message] = field(default_factory=list)
    end: Message | None = None
    connections: int = 0
    cut_mid_event: int = 0


async def follow_with_random_disconnects(
    bases: list[str],
    run_id: str,
    headers: dict[str, str],
    *,
    rng: random.Random,
    max_bytes: int = 2500,
    within: float = 60.0,
) -> Follow:
    """Follow the run's stream to its end, disconnecting after a random number of bytes
    each time (often in the middle of an event) and resuming with ``Last-Event-ID``; each
    connection goes to the next of ``bases`` in turn."""
    parser = SseParser()
    result = Follow()
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0)) as client:
        while result.end is None:
            assert time.monotonic() < deadline, f"no end after {result.connections} connections"
            base = bases[result.connections % len(bases)]
            result.connections += 1
            budget = rng.randint(1, max_bytes)
            request_headers = dict(headers)
            if parser.last_id is not None:
                request_headers["Last-Event-ID"] = parser.last_id
            parser = SseParser(last_id=parser.last_id)  # a new connection starts clean
            url = f"{base}/api/orchestrations/{run_id}/stream"
            async with client.stream("GET", url, headers=request_headers) as response:
                assert response.status_code == 200, await response.aread()
                async for chunk in response.aiter_raw():
                    part = chunk[:budget]
                    budget -= len(part)
                    for message in parser.feed(part):
                        if message.event in TERMINAL_EVENTS:
                            result.end = message
                        elif message.event is not None:
                            result.events.append(message)
                    if budget <= 0 or result.end is not None:
                        break
            if result.end is None and parser.partial:
                result.cut_mid_event += 1
    return result


async def read_sse(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    *,
    on_message: Callable[[Message], bool] | None = None,
) -> tuple[list[Message], bool]:
    """Read one SSE connection. Stops when the server ends the stream (returns
    ``(messages, True)``) or when ``on_message`` returns True (``(messages, False)``)."""
    parser = SseParser()
    messages: list[Message] = []
    async with client.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        async for chunk in response.aiter_raw():
            for message in parser.feed(chunk):
                messages.append(message)
                if on_message is not None and on_message(message):
                    return messages, False
    return messages, True
