"""Agent progress as ``orchestration.step.progress`` events, at most a few per second a step.

An agent that reports often (an A2A agent streaming ``WORKING`` updates) would otherwise
write an event per update. A :class:`ProgressReporter` writes the first report at once and
then at most one every ``interval`` seconds; reports in between are folded into the latest,
which is written when the interval has passed (so the last word is never lost while the
step still runs). Reporting never fails the step: a write that fails is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 0.25


class ProgressReporter:
    """Rate-limits the progress reports of one step attempt; ``write`` records one."""

    def __init__(
        self,
        write: Callable[[dict[str, Any]], Awaitable[object]],
        *,
        interval: float = DEFAULT_INTERVAL,
        label: str = "",
    ) -> None:
        self._write = write
        self._interval = interval
        self._label = label
        self._last = float("-inf")
        self._pending: dict[str, Any] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self.written = 0

    async def __call__(self, data: dict[str, Any]) -> None:
        """Report ``data`` (written now, or folded into the next write)."""
        wait = self._last + self._interval - time.monotonic()
        if wait <= 0 and self._flusher is None:
            await self._emit(data)
            return
        self._pending = data
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_after(max(wait, 0.0)))

    async def _flush_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        data, self._pending = self._pending, None
        self._flusher = None
        if data is not None:
            await self._emit(data)

    async def _emit(self, data: dict[str, Any]) -> None:
        self._last = time.monotonic()
        try:
            await self._write(data)
            self.written += 1
        except Exception as exc:
            log.warning("progress of %s not recorded: %s", self._label, exc)

    async def close(self) -> None:
        """Drop what is still pending (the attempt ended: its outcome says the rest)."""
        flusher, self._flusher = self._flusher, None
        self._pending = None
        if flusher is not None:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
