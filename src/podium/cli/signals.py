"""Graceful stop on SIGINT/SIGTERM for commands that run an event loop.

The first signal asks for a graceful stop; a second one asks to stop at once. Handlers are
installed on the running loop (not as a ``KeyboardInterrupt``) so that the command decides
where to stop, and they are removed again on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from types import TracebackType


class StopSignals:
    """Calls ``graceful`` on the first SIGINT/SIGTERM and ``immediate`` on any later one."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, graceful: Callable[[], None], immediate: Callable[[], None]) -> None:
        self._graceful = graceful
        self._immediate = immediate
        self.received: signal.Signals | None = None
        self.count = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    def _on_signal(self, signum: signal.Signals) -> None:
        self.count += 1
        if self.received is None:
            self.received = signum
            self._graceful()
        else:
            self._immediate()

    def __enter__(self) -> StopSignals:
        self._loop = asyncio.get_running_loop()
        for signum in self.SIGNALS:
            # not available on Windows event loops; Ctrl-C then raises KeyboardInterrupt
            with contextlib.suppress(NotImplementedError, RuntimeError):
                self._loop.add_signal_handler(signum, self._on_signal, signum)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._loop is not None:
            for signum in self.SIGNALS:
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    self._loop.remove_signal_handler(signum)
