"""Request limits (target L1, L2): body size and request rate.

Both limits are kept in memory **per API process**: with several API instances behind a load
balancer, each instance admits up to the configured rate on its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from podium.api.schemas import REQUEST_VALUE_LIMITS
from podium.domain.limits import ValueLimits
from podium.errors import PayloadTooLarge, RateLimited


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """One token bucket per name (an API key id or a client address).

    A bucket holds up to ``per_minute`` tokens and refills at ``per_minute`` tokens per
    minute; each request takes one. Used from the event loop only (not thread-safe). At most
    ``max_buckets`` are kept: full buckets are forgotten first, then the least recently used.
    """

    def __init__(
        self,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_buckets: int = 10_000,
    ) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0  # tokens per second
        self._clock = clock
        self._max = max_buckets
        self._buckets: dict[str, _Bucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, name: str) -> float:
        """Take one token from ``name``'s bucket: 0.0 when allowed, otherwise the seconds to
        wait until a token is available (nothing is taken then)."""
        now = self._clock()
        bucket = self._buckets.pop(name, None)
        if bucket is None:
            self._make_room(now)
            bucket = _Bucket(self.capacity, now)
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        self._buckets[name] = bucket  # re-inserted: dict order is least recently used first
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def check(self, name: str) -> None:
        """Take a token or raise :class:`RateLimited` with the time to wait."""
        wait = self.take(name)
        if wait > 0:
            raise RateLimited(
                f"more than {int(self.capacity)} requests per minute; retry later",
                retry_after=round(wait, 3),
            )

    def _make_room(self, now: float) -> None:
        if len(self._buckets) < self._max:
            return
        refill = self.capacity / self.rate
        for name in [n for n, b in self._buckets.items() if now - b.updated >= refill]:
            del self._buckets[name]  # full again: forgetting it changes nothing
        while len(self._buckets) >= self._max:
            del self._buckets[next(iter(self._buckets))]


class BodyLimit:
    """Refuse request bodies larger than ``max_bytes`` with 413 (:class:`PayloadTooLarge`).

    A declared ``Content-Length`` above the limit is refused before reading; otherwise the
    body is read (counting the bytes as they stream in, so a chunked body cannot slip past)
    and handed on to the application in one piece. Later ``receive`` calls (disconnect
    notifications for streaming responses) pass through unchanged.

    It also sets the limits of JSON values in request bodies (``value_limits``, target L3)
    for the request models of :mod:`podium.api.schemas`.
    """

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, value_limits: ValueLimits | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.value_limits = value_limits or ValueLimits(max_bytes=max_bytes)

    def _too_large(self, size: str) -> PayloadTooLarge:
        return PayloadTooLarge(f"the request body is {size}; the limit is {self.max_bytes} bytes")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                raise self._too_large(f"{int(value)} bytes")
        chunks: list[bytes] = []
        size = 0
        first: Message
        while True:
            message = await receive()
            if message["type"] != "http.request":
                first = message  # the client went away while sending
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise self._too_large(f"more than {self.max_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                first = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return first
            return await receive()

        token = REQUEST_VALUE_LIMITS.set(self.value_limits)
        try:
            await self.app(scope, replay, send)
        finally:
            REQUEST_VALUE_LIMITS.reset(token)
