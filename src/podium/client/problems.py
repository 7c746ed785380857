"""Errors from a Podium server, turned back into the :class:`PodiumError` the server raised,
so that a command prints the same line over HTTP as on the local database."""

from __future__ import annotations

from typing import Any

import httpx

from podium.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    Issue,
    NotFound,
    PayloadTooLarge,
    PodiumError,
    RateLimited,
    StorageUnavailable,
    Unauthorized,
)

BY_STATUS: dict[int, type[PodiumError]] = {
    400: InvalidInput,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: InvalidInput,
    429: RateLimited,
    503: StorageUnavailable,
}


class ServerUnreachable(PodiumError):
    """No answer from the server at ``--url`` / ``PODIUM_URL``."""

    status = 503
    title = "Server unreachable"
    code = "server_unreachable"


class UnexpectedResponse(PodiumError):
    """The server answered something that is not Podium's API (another service, a proxy)."""

    status = 502
    title = "Unexpected response"
    code = "unexpected_response"


def _subclasses(cls: type[PodiumError]) -> list[type[PodiumError]]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


def error_class(code: object, status: int) -> type[PodiumError]:
    """The class whose ``code`` the problem names (the most precise), else by status."""
    for cls in _subclasses(PodiumError):
        if cls.code == code and cls.status == status:
            return cls
    return BY_STATUS.get(status, PodiumError)


def _issues(body: dict[str, Any]) -> list[Issue]:
    raw = body.get("issues")
    if raw is None and isinstance(body.get("detail"), list):
        raw = body["detail"]  # FastAPI's own request validation errors
    issues = []
    for item in raw or []:
        if isinstance(item, dict):
            path = item.get("path")
            if path is None and isinstance(item.get("loc"), list):
                path = ".".join(str(p) for p in item["loc"])
            issues.append(Issue(str(path or ""), str(item.get("message") or item.get("msg"))))
    return issues


def problem_error(response: httpx.Response, *, hint: str = "") -> PodiumError:
    """The error a problem+json response (or any other error response) stands for."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    status = response.status_code
    detail = body.get("detail")
    if not isinstance(detail, str) or not detail:
        detail = body.get("title") if isinstance(body.get("title"), str) else None
        detail = detail or f"HTTP {status} {response.reason_phrase} from {response.request.url}"
    message = detail + (hint if status == 401 else "")
    cls = error_class(body.get("code"), status)
    if cls is RateLimited:
        seconds = body.get("retryAfterSeconds") or response.headers.get("Retry-After") or 1
        try:
            return RateLimited(message, retry_after=float(seconds))
        except ValueError:
            return RateLimited(message, retry_after=1.0)
    # built with the base class's constructor: a subclass may take arguments of its own
    # (UrlNotAllowed's field_name) that the problem carries as issues and details
    exc: PodiumError = cls.__new__(cls)
    if isinstance(exc, InvalidInput):
        InvalidInput.__init__(exc, message, _issues(body))
    else:
        PodiumError.__init__(exc, message)
    return exc


def transport_error(url: str, exc: httpx.TransportError) -> ServerUnreachable:
    """One line naming the server and what went wrong on the way to it."""
    if isinstance(exc, httpx.ConnectError):
        reason = str(exc).strip() or "connection refused"
        if "refused" in reason.lower():
            reason = "connection refused"
        return ServerUnreachable(f"cannot reach the Podium server at {url}: {reason}")
    if isinstance(exc, httpx.TimeoutException):
        return ServerUnreachable(f"the Podium server at {url} did not answer in time")
    reason = str(exc).strip() or type(exc).__name__
    return ServerUnreachable(f"lost the connection to the Podium server at {url}: {reason}")
