"""How a process lives through a database outage: what it saw, and how long to wait.

Two pieces, shared by every part of a process (API, worker, listener):

- :class:`Availability` remembers when this process last failed to reach the database. The
  worker's sweeper reads it: right after an outage it lets live workers renew their leases
  before it takes any step back, so that an outage is not counted as a lost worker (D6).
- :class:`Backoff` is the retry schedule for writes that must not be dropped (a finished
  attempt's result, a heartbeat): exponential with jitter, capped, so that a worker comes
  back within about a second of the database and a fleet does not reconnect in lockstep.

Which driver errors mean "the database is away" is decided in :mod:`podium.storage.dialects`
(:func:`~podium.storage.dialects.is_unavailable`); above storage they are all
:class:`~podium.errors.StorageUnavailable`.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field


class Availability:
    """When this process last found the database unreachable (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_failure: float | None = None
        self.failures = 0  # transactions that found the database away, since start

    def failed(self) -> None:
        """Note that a transaction could not reach the database just now."""
        with self._lock:
            self._last_failure = time.monotonic()
            self.failures += 1

    def seconds_since_failure(self) -> float | None:
        """Seconds since the database was last found away; None if it never was."""
        with self._lock:
            last = self._last_failure
        return None if last is None else time.monotonic() - last

    def unavailable_within(self, seconds: float) -> bool:
        """Whether the database was found away in the last ``seconds``."""
        since = self.seconds_since_failure()
        return since is not None and since < seconds


@dataclass
class Backoff:
    """Exponential backoff with jitter: ``initial``, doubling, at most ``cap`` seconds.

    ``next()`` gives the delay before the next try; ``reset()`` after a success. The jitter
    spreads each delay over [(1 - jitter) * d, d] so that workers cut off together do not
    retry together.
    """

    initial: float = 0.05
    cap: float = 1.0
    jitter: float = 0.5
    _current: float = field(default=0.0, init=False)

    def next(self) -> float:
        self._current = self.initial if self._current == 0 else min(self._current * 2, self.cap)
        return self._current * (1 - self.jitter * random.random())

    def reset(self) -> None:
        self._current = 0.0

    @property
    def failing(self) -> bool:
        """Whether the last try failed (``next()`` was called since the last ``reset()``)."""
        return self._current != 0
