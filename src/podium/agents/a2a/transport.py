"""HTTP plumbing of the A2A client: how connections are opened, and how a failure of the
transport or of the protocol becomes a classified :class:`~podium.agents.base.AgentError`.

Classification (spec section 4): connection refused, DNS and TLS failures, connect timeouts
and connections dropped mid-answer are ``agent_unreachable`` (retryable); HTTP 5xx and 429
are a retryable ``agent_execution_error`` with ``details.httpStatus``; 401 and 403 are
``agent_auth_required``; 404 on the agent card is ``agent_not_found``; other 4xx answers and
protocol errors the agent reports (invalid params, unsupported operation, ...) are a
non-retryable ``agent_execution_error``, except the agent's JSON-RPC internal error, which is
retryable.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field

import httpx
from a2a.client.errors import A2AClientError, A2AClientTimeoutError, AgentCardResolutionError
from a2a.utils.errors import A2AError, InternalError

from podium.agents.base import AgentError
from podium.domain.outcomes import ErrorCode

ConnectHook = Callable[[str], Awaitable[None]]
"""Called with the full URL before every HTTP request to an agent (card, message, task
calls). Raise :class:`~podium.agents.base.AgentError` to refuse the request (for example
``routing_showstopper`` for an address the URL guard forbids); the call then fails with that
error unchanged."""


@dataclass(frozen=True)
class HttpOptions:
    """How the A2A client reaches agents.

    ``transport`` replaces httpx's network transport (tests use ``httpx.MockTransport`` or
    an ASGI transport; a URL guard can wrap ``httpx.AsyncHTTPTransport`` to check the
    resolved address at connect time). It is shared by every client :meth:`open` makes and
    never closed by them: whoever made it closes it. ``connect_hook`` sees every request's
    URL first. ``headers`` go with every request (for example an ``Authorization`` header).
    ``request_timeout`` bounds each unary request (card, send, get, cancel); event streams
    have no read timeout of their own and are bounded by the step and agent timeouts.
    """

    transport: httpx.AsyncBaseTransport | None = None
    connect_hook: ConnectHook | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    connect_timeout: float = 10.0
    request_timeout: float = 30.0

    def open(self) -> httpx.AsyncClient:
        """A new client with these options; the caller closes it."""
        hooks: dict[str, list[Callable[..., object]]] = {}
        hook = self.connect_hook
        if hook is not None:

            async def check(request: httpx.Request) -> None:
                await hook(str(request.url))

            hooks["request"] = [check]
        return httpx.AsyncClient(
            transport=_Borrowed(self.transport) if self.transport is not None else None,
            headers=dict(self.headers),
            timeout=httpx.Timeout(
                connect=self.connect_timeout,
                read=None,
                write=self.request_timeout,
                pool=self.request_timeout,
            ),
            event_hooks=hooks,
            follow_redirects=False,
        )


class _Borrowed(httpx.AsyncBaseTransport):
    """A transport lent to one client: closing the client leaves it open."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from, outermost first."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def http_status(exc: BaseException) -> int | None:
    """The HTTP status behind ``exc``, if an HTTP answer caused it."""
    for e in _chain(exc):
        if isinstance(e, httpx.HTTPStatusError):
            return e.response.status_code
        if isinstance(e, AgentCardResolutionError) and e.status_code is not None:
            return e.status_code
    return None


def _from_status(status: int, what: str, details: dict[str, object]) -> AgentError:
    details = {**details, "httpStatus": status}
    if status in (401, 403):
        return AgentError(
            ErrorCode.AGENT_AUTH_REQUIRED,
            f"{what}: HTTP {status} (the agent wants credentials)",
            retryable=False,
            details=details,
        )
    retryable = status >= 500 or status == 429
    return AgentError(
        ErrorCode.AGENT_EXECUTION_ERROR,
        f"{what}: HTTP {status}",
        retryable=retryable,
        details=details,
    )


def classify(exc: BaseException, *, url: str, card: bool = False) -> AgentError:
    """The :class:`AgentError` for a failed request to the agent at ``url``; ``card`` says
    the request fetched the agent card (a 404 there means there is no agent)."""
    if isinstance(exc, AgentError):
        return exc
    details: dict[str, object] = {"url": url}
    what = f"agent card at {url}" if card else f"agent at {url}"
    status = http_status(exc)
    if status is not None:
        if card and status == 404:
            return AgentError(
                ErrorCode.AGENT_NOT_FOUND,
                f"no agent card at {url} (HTTP 404)",
                retryable=False,
                details={**details, "httpStatus": 404},
            )
        return _from_status(status, what, details)
    chain = list(_chain(exc))
    for e in chain:
        if isinstance(e, httpx.ConnectError | httpx.ConnectTimeout | httpx.NetworkError):
            # refused, DNS, TLS handshake, reset or dropped connection
            return AgentError(
                ErrorCode.AGENT_UNREACHABLE,
                f"{what} is unreachable: {type(e).__name__}: {e}",
                retryable=True,
                details={**details, "exception": type(e).__name__},
            )
        if isinstance(e, httpx.RemoteProtocolError):
            return AgentError(
                ErrorCode.AGENT_UNREACHABLE,
                f"{what} broke off the connection: {e}",
                retryable=True,
                details={**details, "exception": type(e).__name__},
            )
    if any(isinstance(e, httpx.TimeoutException | A2AClientTimeoutError) for e in chain):
        return AgentError(
            ErrorCode.AGENT_TIMEOUT,
            f"{what} did not answer a request within the request timeout",
            retryable=True,
            details=details,
        )
    if isinstance(exc, AgentCardResolutionError):
        return AgentError(
            ErrorCode.AGENT_EXECUTION_ERROR,
            f"invalid {what}: {exc.message}",
            retryable=False,
            details=details,
        )
    if isinstance(exc, A2AError):
        # the agent answered with a protocol error; only its internal error may pass
        kind = type(exc).__name__
        return AgentError(
            ErrorCode.AGENT_EXECUTION_ERROR,
            f"{what} answered {kind}: {exc.message}",
            # a malformed answer (plain client error) may be transient, like an internal one
            retryable=isinstance(exc, InternalError) or type(exc) is A2AClientError,
            details={**details, "a2aError": kind},
        )
    return AgentError(
        ErrorCode.AGENT_EXECUTION_ERROR,
        f"calling {what} failed: {type(exc).__name__}: {exc}",
        details={**details, "exception": type(exc).__name__},
    )
