"""Watching a worker's background loops (heartbeat, sweeper, recorder).

A loop is written as one round (``iteration``) that :func:`supervise` calls again and again.
A round that raises is logged with its stack and tried again after a backoff; the loop goes
on. Only when rounds keep failing (``max_failures`` in a row) is the loop taken to be unable
to run: ``on_fatal`` is told, and the worker stops rather than working on without, say,
heartbeats. Errors a round expects (the database away for a moment) are the round's own
business and never reach the supervisor.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from podium.errors import PodiumError

log = logging.getLogger(__name__)


class LoopFailed(PodiumError):
    """A background loop of the worker failed again and again; the worker stopped."""


async def supervise(
    name: str,
    iteration: Callable[[], Awaitable[None]],
    *,
    on_fatal: Callable[[LoopFailed], None],
    max_failures: int = 8,
    first_backoff: float = 0.05,
    max_backoff: float = 2.0,
) -> None:
    """Call ``iteration`` until cancelled; restart it with backoff after an exception.

    After ``max_failures`` consecutive failures, call ``on_fatal`` and return.
    """
    failures = 0
    while True:
        try:
            await iteration()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failures += 1
            if failures >= max_failures:
                log.error(
                    "background loop %s failed %d times in a row; the worker stops",
                    name,
                    failures,
                    exc_info=True,
                )
                on_fatal(LoopFailed(f"background loop {name} cannot run: {exc!r}"))
                return
            delay = min(first_backoff * 2 ** (failures - 1), max_backoff)
            log.exception(
                "background loop %s failed (%d in a row); restarting in %.2f s",
                name,
                failures,
                delay,
            )
            await asyncio.sleep(delay)
        else:
            failures = 0
