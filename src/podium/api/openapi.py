"""The OpenAPI document: FastAPI's, completed with what the middlewares and handlers add.

Routes declare the errors particular to them with :func:`errors`; this module adds the ones
every authenticated route can answer (401, 429; 400 and 413 for routes with a body),
describes every error as ``application/problem+json`` (:class:`~podium.api.errors.Problem`)
and the events of ``text/event-stream`` responses, drops ``null`` from parameter schemas (a
parameter is absent or has a value), and declares the bearer-key security scheme (optional in
development mode).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from podium.api.auth import PUBLIC_PATHS
from podium.api.errors import PROBLEM_MEDIA_TYPE, Problem

DESCRIPTIONS = {
    400: "The request body could not be read (for example, it is not UTF-8).",
    401: "No API key, or one that is unknown, malformed or revoked.",
    403: "The key's role does not allow this request.",
    404: "Not found (objects of other organizations are not found either).",
    409: "The object's state does not allow this request.",
    413: "The request body is larger than the limit.",
    415: "The body's media type is not one this route reads.",
    422: "The request is invalid; every problem is listed in `issues`.",
    429: "Too many requests; retry after `Retry-After` seconds.",
    503: "The database is unavailable.",
}
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_HEADERS = {
    401: {
        "WWW-Authenticate": {
            "description": "The authentication scheme: Bearer.",
            "schema": {"type": "string"},
        }
    },
    429: {
        "Retry-After": {
            "description": "Seconds to wait before retrying.",
            "schema": {"type": "integer", "minimum": 1},
        }
    },
}
_UNUSED_DEFAULTS = ("HTTPValidationError", "ValidationError")
SSE_MEDIA_TYPE = "text/event-stream"
# OpenAPI 3.1: the schema of an event stream describes each event
_SSE_EVENT = {
    "type": "object",
    "description": "One Server-Sent Event; `data` holds JSON text.",
    "properties": {
        "id": {"type": "string"},
        "event": {"type": "string"},
        "data": {"type": "string", "contentMediaType": "application/json"},
        "retry": {"type": "integer", "minimum": 0},
    },
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` entry of a route for the errors it can answer besides the common
    ones; their content is filled in as problem+json by :func:`install`."""
    return {status: {"description": DESCRIPTIONS[status]} for status in statuses}


def _problem_schemas() -> dict[str, Any]:
    schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    found: dict[str, Any] = schema.pop("$defs", {})
    found["Problem"] = schema
    return found


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """``anyOf: [X, null]`` -> X: a parameter is absent or has a value, never null."""
    options = schema.get("anyOf")
    if not isinstance(options, list):
        return schema
    kept = [o for o in options if o != {"type": "null"}]
    if len(kept) != 1 or len(kept) == len(options):
        return schema
    rest = {k: v for k, v in schema.items() if k != "anyOf"}
    return {**kept[0], **rest}


def _complete(document: dict[str, Any], *, keys_required: bool) -> dict[str, Any]:
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in _UNUSED_DEFAULTS:
        schemas.pop(name, None)
    schemas.update(_problem_schemas())
    schemas["ServerSentEvent"] = _SSE_EVENT
    components["securitySchemes"] = {
        "bearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key (`podium keys create`): `Authorization: Bearer pod_...`.",
        }
    }
    # development mode on loopback: the key is optional
    anonymous: dict[str, list[str]] = {}
    secured = [{"bearerAuth": []}] if keys_required else [{"bearerAuth": []}, anonymous]
    for path, item in document.get("paths", {}).items():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                parameter["schema"] = _not_null(parameter.get("schema", {}))
            responses: dict[str, Any] = operation.setdefault("responses", {})
            if path in PUBLIC_PATHS:
                operation["security"] = []
            else:
                operation["security"] = secured
                for common in (401, 429):
                    responses.setdefault(str(common), {"description": DESCRIPTIONS[common]})
            if "requestBody" in operation:
                for common in (400, 413):
                    responses.setdefault(str(common), {"description": DESCRIPTIONS[common]})
            for status, response in responses.items():
                stream = response.get("content", {}).get(SSE_MEDIA_TYPE)
                if stream is not None and stream.get("schema") in (None, {"type": "string"}):
                    # FastAPI's placeholder for a non-JSON response class
                    stream["schema"] = {"$ref": "#/components/schemas/ServerSentEvent"}
                if status.isdigit() and int(status) >= 400:
                    response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": _PROBLEM_REF}}
                    if int(status) in _HEADERS:
                        response["headers"] = _HEADERS[int(status)]
    return document


def install(app: FastAPI, *, keys_required: bool) -> None:
    """Make ``app.openapi()`` return the completed document (built once, then cached)."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = _complete(document, keys_required=keys_required)
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]  # FastAPI's documented way to customize
