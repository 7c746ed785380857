"""Request work that waits on another server (fetching an Agent Card) runs beside the
threads that serve other requests, a bounded number at a time per organization (target T1).

Synchronous route handlers share one thread pool (40 threads by default). A registration
whose agent accepts the connection and never answers would hold one of them for the card
timeout, so 40 such registrations by one organization would stall every tenant. Work sent
through :class:`OutboundSlots` instead uses a capacity limiter of its own per organization:
it never takes a token of the shared pool, and beyond ``per_organization`` calls in flight
the organization's next one is refused at once with 429 (``Retry-After``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

from podium.errors import RateLimited

T = TypeVar("T")


class OutboundSlots:
    """Per-organization limiters for outbound work done while answering a request."""

    def __init__(self, per_organization: int, *, retry_after: float) -> None:
        if per_organization < 1:
            raise ValueError("per_organization must be at least 1")
        self.per_organization = per_organization
        self.retry_after = retry_after
        self._limiters: dict[str, anyio.CapacityLimiter] = {}

    def in_flight(self, organization: str) -> int:
        limiter = self._limiters.get(organization)
        return 0 if limiter is None else int(limiter.borrowed_tokens)

    async def run(self, organization: str, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` in a worker thread under ``organization``'s limiter; raise
        :class:`RateLimited` when that organization already has all its slots in use."""
        limiter = self._limiters.get(organization)
        if limiter is None:
            limiter = self._limiters[organization] = anyio.CapacityLimiter(self.per_organization)
        if limiter.available_tokens < 1:
            raise RateLimited(
                f"organization {organization} already has {self.per_organization} agent "
                "card fetches in flight (PODIUM_AGENT_CARD_CONCURRENCY); retry later",
                retry_after=self.retry_after,
            )
        return await anyio.to_thread.run_sync(lambda: fn(*args), limiter=limiter)
