"""A real webhook receiver on loopback for the tests: a small ASGI app under uvicorn (in a
thread) that answers as told: ``ok``, ``500``, ``hang``, ``429`` (with ``Retry-After``),
``301``, ``410``, or refuses connections altogether (:meth:`Receiver.refuse`)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import uvicorn
from standardwebhooks.webhooks import Webhook


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    answered: int

    @property
    def event(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


class Receiver:
    """Records every request; ``mode`` picks the answer."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.retry_after = "1"
        self.hang_seconds = 30.0
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        mode = self.mode
        raw = {k.decode(): v.decode() for k, v in scope["headers"]}
        status, headers = 200, [(b"content-type", b"text/plain")]
        if mode == "hang":  # recorded as not answered (0): the sender gives up first
            with self._lock:
                self.requests.append(Received(raw, body, 0))
            await asyncio.sleep(self.hang_seconds)
            return
        if mode in ("500", "410"):
            status = int(mode)
        elif mode in ("429", "503"):
            status = int(mode)
            headers.append((b"retry-after", self.retry_after.encode()))
        elif mode == "301":
            status = 301
            headers.append((b"location", b"https://elsewhere.example/hook"))
        with self._lock:
            self.requests.append(Received(raw, body, status))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": f"answer {status}".encode()})

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Listen (again) on the same port."""
        if self._server is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self._sock.close()
        self._sock = sock
        config = uvicorn.Config(
            self, log_level="error", lifespan="off", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            assert time.monotonic() < deadline, "receiver did not start"
            time.sleep(0.01)

    def refuse(self) -> None:
        """Stop listening: connections to the port are refused."""
        if self._server is None:
            return
        self._server.should_exit = True
        self._server.force_exit = True
        assert self._thread is not None
        self._thread.join(10)
        self._server = None
        self._sock.close()

    def close(self) -> None:
        self.refuse()
        self._sock.close()

    # -- what was received ------------------------------------------------------------------

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.requests)

    def accepted(self) -> list[Received]:
        return [r for r in self.snapshot() if 200 <= r.answered < 300]


def verify(secret: str, request: Received) -> dict[str, Any]:
    """Verify ``request`` with the Standard Webhooks reference library (raises if invalid)."""
    payload: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
    return payload
