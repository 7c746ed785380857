"""A TCP proxy on loopback that can cut a database off: refuse, drop or stall connections.

Put it between Podium and PostgreSQL (``proxy.url(pg_url)`` rewrites the host and port) and
switch its mode while the code under test runs::

    with PgProxy.to_url(pg_url) as proxy:
        store = SqlStore.open(proxy.url(pg_url))
        proxy.refuse()          # new connections refused, open ones reset
        ...
        proxy.forward()         # back to normal

Modes:

- ``forward``: bytes flow both ways (the normal state).
- ``refuse``: the listening socket is closed (connect gets ``ECONNREFUSED``, as when the
  server is down) and every open connection is reset, as after a server restart.
- ``drop``: every open connection is reset; new connections are accepted and forwarded.
- ``stall``: nothing flows on any connection, open or new; bytes already read are held and
  delivered when the mode goes back to ``forward`` (a network partition that heals).

The proxy runs its own event loop in a daemon thread, so that synchronous code, ``asyncio``
tests and worker subprocesses (which connect over TCP) can all use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Literal

from sqlalchemy.engine import make_url

Mode = Literal["forward", "refuse", "drop", "stall"]


class PgProxy:
    """A loopback TCP proxy to ``upstream_host:upstream_port`` (see the module docstring)."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = _free_port()
        self.mode: Mode = "forward"
        self.accepted = 0  # connections accepted so far (for tests that check reconnects)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._flowing: asyncio.Event | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @classmethod
    def to_url(cls, url: str) -> PgProxy:
        """A proxy to the host and port of database URL ``url``."""
        parsed = make_url(url)
        return cls(parsed.host or "127.0.0.1", parsed.port or 5432)

    def url(self, url: str) -> str:
        """``url`` pointed at this proxy instead of the server."""
        parsed = make_url(url).set(host="127.0.0.1", port=self.port)
        return parsed.render_as_string(hide_password=False)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> PgProxy:
        self._thread.start()
        self._call(self._init())
        self._call(self._listen())
        return self

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._stop_listening())
        self._call(self._reset_all())
        self._call(self._cancel_tasks())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> PgProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- modes --------------------------------------------------------------------------

    def forward(self) -> None:
        """Back to normal: listen again and let held bytes flow."""
        self._call(self._set_forward())

    def refuse(self) -> None:
        """Refuse new connections and reset the open ones (the server is down)."""
        self._call(self._set_refuse())

    def drop(self) -> None:
        """Reset every open connection; new ones are forwarded (a restart that was quick)."""
        self._call(self._reset_all())

    def stall(self) -> None:
        """Hold every byte on every connection, open or new, until :meth:`forward`."""
        self._call(self._set_stall())

    @contextlib.contextmanager
    def outage(self, mode: Mode = "refuse") -> Iterator[None]:
        """The block runs with the proxy in ``mode``; forwarding again afterwards."""
        {"refuse": self.refuse, "drop": self.drop, "stall": self.stall, "forward": self.forward}[
            mode
        ]()
        try:
            yield
        finally:
            self.forward()

    def cut_for(self, seconds: float, mode: Mode = "refuse") -> threading.Thread:
        """Start an outage of ``seconds`` in the background; join the thread to wait for
        its end."""

        def cut() -> None:
            with self.outage(mode):
                time.sleep(seconds)  # the outage's length is the point: nothing to wait on

        thread = threading.Thread(target=cut, daemon=True)
        thread.start()
        return thread

    # -- inside the proxy's loop --------------------------------------------------------

    def _call(self, coro: object) -> None:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]
        future.result(timeout=10)

    async def _init(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._handle, "127.0.0.1", self.port, reuse_address=True
            )

    async def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _set_forward(self) -> None:
        self.mode = "forward"
        await self._listen()
        assert self._flowing is not None
        self._flowing.set()

    async def _set_refuse(self) -> None:
        self.mode = "refuse"
        await self._stop_listening()
        await self._reset_all()

    async def _set_stall(self) -> None:
        self.mode = "stall"
        assert self._flowing is not None
        self._flowing.clear()

    async def _cancel_tasks(self) -> None:
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _reset_all(self) -> None:
        for writer in list(self._writers):
            _reset(writer)
        self._writers.clear()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        assert self._flowing is not None
        self._writers.add(client_w)
        try:
            await self._flowing.wait()  # a stalled proxy accepts but does not connect through
            server_r, server_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            self._writers.discard(client_w)
            _reset(client_w)
            return
        self._writers.add(server_w)
        pipes = [
            asyncio.create_task(self._pipe(client_r, server_w)),
            asyncio.create_task(self._pipe(server_r, client_w)),
        ]
        await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for task in pipes:
            task.cancel()
        for writer in (client_w, server_w):
            self._writers.discard(writer)
            _reset(writer)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                await self._flowing.wait()
                if writer.is_closing():
                    return
                writer.write(data)
                await writer.drain()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a crashed server's kernel would."""
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError):
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
