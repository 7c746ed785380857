"""Token buckets for the routing policy's rate limits.

Buckets live in memory, so a limit holds **per worker process**: with N worker processes an
agent may receive up to N times the configured rate. Size limits for one process, or divide
the rate by the number of workers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``; starts full.

    A call may *reserve* a token that is not there yet (the level goes negative) when it is
    prepared to wait until the token would have arrived.
    """

    rate: float
    burst: float
    level: float = field(init=False)
    updated: float = field(init=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    def __post_init__(self) -> None:
        self.level = self.burst
        self.updated = self.clock()

    def _refill(self) -> None:
        now = self.clock()
        self.level = min(self.burst, self.level + (now - self.updated) * self.rate)
        self.updated = now

    def reserve(self, max_wait: float) -> float | None:
        """Take one token: the seconds to wait before using it (0 when one is there), or
        None (nothing taken) when that wait would exceed ``max_wait``."""
        self._refill()
        wait = max(0.0, (1.0 - self.level) / self.rate)
        if wait > max_wait:
            return None
        self.level -= 1.0
        return wait

    def release(self) -> None:
        """Give back a token taken by :meth:`reserve` (the call did not happen)."""
        self.level = min(self.burst, self.level + 1.0)


class RateLimiter:
    """The buckets of one process, by ``(limit name, key)``. A bucket whose limit changed
    rate or burst starts afresh."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[tuple[str, str], TokenBucket] = {}

    def reserve(
        self, name: str, key: str, *, rate: float, burst: float, max_wait: float
    ) -> float | None:
        """See :meth:`TokenBucket.reserve`, for the bucket of ``name`` and ``key``."""
        bucket = self._buckets.get((name, key))
        if bucket is None or bucket.rate != rate or bucket.burst != burst:
            bucket = TokenBucket(rate, burst, clock=self._clock)
            self._buckets[(name, key)] = bucket
        return bucket.reserve(max_wait)

    def release(self, name: str, key: str) -> None:
        """Give back a token reserved from the bucket of ``name`` and ``key``."""
        bucket = self._buckets.get((name, key))
        if bucket is not None:
            bucket.release()
