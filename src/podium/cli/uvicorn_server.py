"""The uvicorn server ``podium serve`` runs (a module of its own so that importing the CLI
does not import the web stack)."""

from __future__ import annotations

import contextlib
import gc
import socket
from collections.abc import Iterator

import uvicorn

from podium.cli import render
from podium.cli.signals import StopSignals


class AnnouncingServer(uvicorn.Server):
    """Uvicorn, announcing the URLs once it accepts connections. The first SIGTERM/SIGINT
    stops it gracefully, a second one at once; unlike plain uvicorn it then exits normally
    instead of re-raising the signal (exit code 0, or 130 after a forced stop)."""

    def __init__(self, config: uvicorn.Config, banner: list[str]) -> None:
        super().__init__(config)
        self.banner = banner
        self.signals = 0

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        def graceful() -> None:
            self.should_exit = True

        def immediate() -> None:
            self.force_exit = True

        with StopSignals(graceful, immediate) as signals:
            try:
                yield
            finally:
                self.signals = signals.count

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            # What was built to start (modules, the app, its routes) lives as long as the
            # process; frozen, it is out of the collector's sight, so a full collection walks
            # only what requests made. Measured (bench/web.py): without this, a pause of
            # ~70 ms every ~15 dashboard pages, which set their p95; with it, under 1 ms.
            gc.collect()
            gc.freeze()
            for line in self.banner:
                render.plain(render.out(), line)
            render.out().file.flush()
