"""Errors as RFC 9457 problem details (``application/problem+json``).

Every error response of the API has the members ``type``, ``title``, ``status``, ``detail``,
``instance`` and ``code``, plus the error's details (``issues`` for invalid input,
``retryAfterSeconds`` when rate limited). Server-side failures (5xx) never carry internals:
their detail is generic and the real cause goes to the log.

Errors raised by route handlers reach the exception handlers installed by
:func:`install_handlers`; errors raised by the ASGI middlewares (auth, limits) and anything
unexpected reach :class:`ProblemGuard`, the outermost middleware. Both render through
:func:`podium_problem`, so the two paths answer alike.
"""

from __future__ import annotations

import http
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from podium.errors import (
    InvalidInput,
    Issue,
    PodiumError,
    RateLimited,
    StorageUnavailable,
    Unauthorized,
)

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:podium:problem:"
_RESERVED = frozenset({"type", "title", "status", "detail", "instance", "code"})
_CODES_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}
# WebSocket close codes for errors met before a WebSocket is accepted
_WS_POLICY_VIOLATION = 1008
_WS_TRY_AGAIN_LATER = 1013
_WS_INTERNAL_ERROR = 1011


class ProblemIssue(BaseModel):
    """One problem in the request, located by a path such as ``body.parameters``."""

    path: str
    message: str


class Problem(BaseModel):
    """An error response (RFC 9457). Further members carry the error's details."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str
    code: str
    issues: list[ProblemIssue] | None = None
    retryAfterSeconds: float | None = None


class UnsupportedMediaType(PodiumError):
    """A request body in a media type the route does not read."""

    status = 415
    title = "Unsupported media type"
    code = "unsupported_media_type"


def problem_response(
    status: int,
    *,
    title: str,
    code: str,
    detail: str,
    instance: str,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A problem+json response; ``extra`` members never replace the standard ones."""
    body: dict[str, Any] = {k: v for k, v in (extra or {}).items() if k not in _RESERVED}
    body.update(
        type=f"{TYPE_PREFIX}{code}",
        title=title,
        status=status,
        detail=detail,
        instance=instance,
        code=code,
    )
    return JSONResponse(
        body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_MEDIA_TYPE
    )


def podium_problem(exc: PodiumError, instance: str) -> JSONResponse:
    """The problem for a :class:`PodiumError`; 5xx errors are logged and answered generically."""
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="podium"'
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    if isinstance(exc, StorageUnavailable):
        return _unavailable_problem(exc, instance)
    if exc.status >= 500:
        log.error("%s at %s: %s", type(exc).__name__, instance, exc.message)
        return problem_response(
            exc.status,
            title=exc.title,
            code=exc.code,
            detail="the server could not complete the request; see the server log",
            instance=instance,
            headers=headers,
        )
    return problem_response(
        exc.status,
        title=exc.title,
        code=exc.code,
        detail=exc.message,
        instance=instance,
        extra=exc.details,
        headers=headers,
    )


def _unavailable_problem(exc: StorageUnavailable, instance: str) -> JSONResponse:
    """503 while the database is away (D6): the client is told when to try again; the
    detail names no host (the log does)."""
    retry_after = max(1, math.ceil(exc.retry_after))
    log.warning("storage unavailable at %s: %s", instance, exc.message)
    return problem_response(
        503,
        title=exc.title,
        code=exc.code,
        detail=f"the database is unavailable; try again in {retry_after} s",
        instance=instance,
        extra={"retryAfterSeconds": retry_after},
        headers={"Retry-After": str(retry_after)},
    )


def internal_problem(instance: str) -> JSONResponse:
    return problem_response(
        500,
        title="Internal error",
        code="internal_error",
        detail="an unexpected error occurred; see the server log",
        instance=instance,
    )


def issue_path(loc: Sequence[str | int]) -> str:
    """``("body", "steps", 2, "id")`` -> ``body.steps[2].id``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def validation_issues(errors: Sequence[Any]) -> list[Issue]:
    """Issues from FastAPI/pydantic validation errors; values the client sent are not echoed."""
    issues = []
    for error in errors:
        loc = tuple(error.get("loc", ()))
        if error.get("type") == "json_invalid":
            # the location holds a character offset, not a field
            reason = error.get("ctx", {}).get("error", "invalid JSON")
            issues.append(Issue("body", f"the body is not valid JSON: {reason}"))
            continue
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        issues.append(Issue(issue_path(loc), message))
    return issues


async def _on_podium_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PodiumError)
    return podium_problem(exc, request.url.path)


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    invalid = InvalidInput("the request is invalid", validation_issues(exc.errors()))
    return podium_problem(invalid, request.url.path)


def too_deep_problem(instance: str) -> JSONResponse:
    """A ``RecursionError`` met while handling a request (target L3): the input nests too
    deeply for Python to follow, which is the client's doing, so 422 and never 500."""
    too_deep = InvalidInput(
        "the request nests too deeply to be processed",
        [Issue("body", "nests too deeply to be processed (see PODIUM_MAX_NESTING_DEPTH)")],
    )
    return podium_problem(too_deep, instance)


async def _on_recursion_error(request: Request, exc: Exception) -> Response:
    log.warning("RecursionError in %s %s: answered 422", request.method, request.url.path)
    return too_deep_problem(request.url.path)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc.__cause__, RecursionError):  # FastAPI's body parser wraps it in a 400
        return too_deep_problem(request.url.path)
    status = exc.status_code
    try:
        title = http.HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    detail = exc.detail if isinstance(exc.detail, str) else title
    if status == 404 and detail == title:
        detail = f"no route matches {request.method} {request.url.path}"
    headers = dict(exc.headers or {})
    if status == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
        headers["Allow"] = _allowed_methods(request)
    return problem_response(
        status,
        title=title,
        code=_CODES_BY_STATUS.get(status, f"http_{status}"),
        detail=detail,
        instance=request.url.path,
        headers=headers,
    )


def _allowed_methods(request: Request) -> str:
    """Every method the API documents for this path (Starlette names only the first
    matching route's methods)."""
    path = request.url.path
    methods: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        if compile_path(template)[0].match(path):
            methods |= {method.upper() for method in operations}
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


def install_handlers(app: FastAPI) -> None:
    """Answer Podium errors, request validation errors and routing errors as problems."""
    app.add_exception_handler(PodiumError, _on_podium_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(RecursionError, _on_recursion_error)


class ProblemGuard:
    """Outermost middleware: a :class:`PodiumError` raised by an inner middleware becomes its
    problem response, and any other exception a logged 500 problem without internals. On a
    WebSocket that is not yet accepted the error closes the connection instead."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] in ("http.response.start", "websocket.accept", "websocket.close"):
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            instance = scope.get("path", "")
            if not isinstance(exc, PodiumError):
                log.exception("unexpected error in %s %s", scope.get("method", "WS"), instance)
            if started:
                raise  # too late for a problem response: let the server drop the connection
            if scope["type"] == "websocket":
                await send(_websocket_close(exc))
                return
            if isinstance(exc, PodiumError):
                response = podium_problem(exc, instance)
            elif isinstance(exc, RecursionError):
                response = too_deep_problem(instance)
            else:
                response = internal_problem(instance)
            await response(scope, receive, send)


def _websocket_close(exc: Exception) -> Message:
    if isinstance(exc, RateLimited):
        code, reason = _WS_TRY_AGAIN_LATER, exc.message
    elif isinstance(exc, PodiumError) and exc.status < 500:
        code, reason = _WS_POLICY_VIOLATION, exc.message
    else:
        code, reason = _WS_INTERNAL_ERROR, "internal error"
    return {"type": "websocket.close", "code": code, "reason": reason[:120]}
