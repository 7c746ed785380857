"""One webhook attempt over HTTP: signed, no redirects, bounded time, guarded address (N1)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx

from podium.events.webhooks import signing
from podium.net.urlguard import UrlGuard, refusal_in

MAX_RESPONSE_BYTES = 1024
MAX_RETRY_AFTER_SECONDS = 24 * 3600.0


@dataclass(frozen=True)
class Response:
    """What the receiver did with one attempt."""

    status_code: int | None  # None: no HTTP response (refused, timeout, refused address)
    error: str | None  # None when 2xx
    body: str = ""
    retry_after: float | None = None  # seconds, from Retry-After on 429/503

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date), capped."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - now).total_seconds()), MAX_RETRY_AFTER_SECONDS)


class WebhookClient:
    """Sends attempts through one guarded connection pool."""

    def __init__(self, guard: UrlGuard, *, timeout: float = 15.0) -> None:
        self.guard = guard
        self._client = httpx.AsyncClient(
            transport=guard.transport(),
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            trust_env=False,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(
        self, url: str, secrets_: tuple[str, ...], message_id: str, body: bytes
    ) -> Response:
        """POST ``body`` to ``url`` signed with every live secret; never raises for the
        receiver's behaviour (that is the :class:`Response`)."""
        timestamp = int(time.time())  # fresh per attempt; always the wall clock (W1)
        headers = signing.headers(secrets_, message_id, timestamp, body)
        headers["user-agent"] = "Podium-Webhooks/1"
        try:
            async with self._client.stream("POST", url, content=body, headers=headers) as r:
                text = await _read_some(r)
        except httpx.TimeoutException as exc:
            return Response(None, f"timed out ({type(exc).__name__})")
        except httpx.HTTPError as exc:
            refused = refusal_in(exc)
            if refused is not None:
                return Response(None, f"address refused: {refused}")
            return Response(
                None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            )
        code = r.status_code
        if 200 <= code < 300:
            return Response(code, None, text)
        if 300 <= code < 400:
            location = r.headers.get("location", "(no Location)")
            return Response(code, f"redirect {code} to {location} not followed", text)
        wait = None
        if code in (429, 503):
            wait = retry_after(r.headers.get("retry-after"), datetime.now(UTC))
        return Response(code, f"HTTP {code}", text, wait)


async def _read_some(response: httpx.Response) -> str:
    chunks = bytearray()
    async for chunk in response.aiter_bytes():
        chunks += chunk
        if len(chunks) >= MAX_RESPONSE_BYTES:
            break
    return bytes(chunks[:MAX_RESPONSE_BYTES]).decode("utf-8", errors="replace")


def next_delay(schedule: tuple[float, ...], attempts_made: int, jitter: float) -> float | None:
    """The delay before the next attempt after ``attempts_made`` attempts (None: none left).
    ``jitter`` in [0, 1) spreads it over ±20 % so that retries of many deliveries spread out."""
    if attempts_made > len(schedule):
        return None
    base = schedule[attempts_made - 1]
    return base * (0.8 + 0.4 * jitter)


def later(now: datetime, seconds: float) -> datetime:
    return now + timedelta(seconds=seconds)
