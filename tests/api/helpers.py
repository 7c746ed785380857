"""Helpers for HTTP API tests: documents, an in-process client, problem assertions."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from podium.api.app import create_app
from podium.settings import Settings
from podium.storage.store import SqlStore

ECHO = """
metadata: {name: greet, version: 1.0.0}
orchestration:
  parameters:
    - {name: who, type: string, default: world}
  steps:
    - {id: hello, agent: echo, input: {text: "hello {{ parameters.who }}"}}
    - {id: shout, agent: uppercase, depends_on: [hello], input: {text: loud}}
"""

# fails at its second step, so that retry and skip have a target
FAILING = """
metadata: {name: recoverable, version: 1.0.0}
orchestration:
  error_handling: {on_step_failure: {maxAttempts: 1}}
  steps:
    - {id: first, agent: echo, input: {text: one}}
    - {id: shaky, agent: reject, depends_on: [first], input: {text: two}}
    - {id: last, agent: echo, depends_on: [shaky], input: {got: "{{ steps.shaky.output }}"}}
"""

YAML = {"content-type": "application/yaml"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


Finisher = Callable[[str], Awaitable[str]]


@asynccontextmanager
async def serving(
    app: FastAPI, *, raise_app_exceptions: bool = True
) -> AsyncIterator[httpx.AsyncClient]:
    """A client for ``app``, inside the app's lifespan."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        yield client


@asynccontextmanager
async def api(
    store: SqlStore, settings: Settings, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """A client for an API (no embedded worker) on ``store`` with ``settings`` + overrides."""
    app = create_app(settings.model_copy(update=overrides), store=store, worker=False)
    async with serving(app) as client:
        yield client


async def push(client: httpx.AsyncClient, headers: dict[str, str], doc: str) -> None:
    response = await client.post("/api/definitions", content=doc, headers=headers | YAML)
    assert response.status_code in (200, 201), response.text


async def launch(
    client: httpx.AsyncClient, headers: dict[str, str], definition: str, **body: Any
) -> dict[str, Any]:
    response = await client.post(
        "/api/orchestrations", json={"definition": definition, **body}, headers=headers
    )
    assert response.status_code == 201, response.text
    run: dict[str, Any] = response.json()
    return run


async def failed_run(
    client: httpx.AsyncClient, headers: dict[str, str], finish: Finisher
) -> dict[str, Any]:
    """A run of FAILING that ended ``failed`` at its step ``shaky``."""
    await push(client, headers, FAILING)
    run = await launch(client, headers, "recoverable")
    assert await finish(run["id"]) == "failed"
    return run


def assert_problem(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, Any]:
    """The response is an RFC 9457 problem with ``status`` (and ``code``); returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail", "instance", "code"} <= body.keys()
    assert body["status"] == status
    if code is not None:
        assert body["code"] == code, body
    return body
