"""Errors are RFC 9457 problems, unexpected ones without internals; the operations probes."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from podium.api.app import create_app
from podium.api.errors import issue_path
from podium.errors import StorageUnavailable
from podium.settings import Settings
from podium.storage.database import Database
from podium.storage.store import SqlStore
from tests.api.helpers import assert_problem, serving


async def test_an_unexpected_error_is_a_500_problem_without_internals(
    store: SqlStore, settings: Settings, acme: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings, store=store, worker=False)

    @app.get("/api/explode")
    def explode() -> None:
        raise RuntimeError("secret internals at /srv/podium")

    async with serving(app, raise_app_exceptions=False) as client:
        with caplog.at_level(logging.ERROR, logger="podium.api"):
            response = await client.get("/api/explode", headers=acme)
    body = assert_problem(response, 500, "internal_error")
    assert "secret" not in response.text
    assert body["instance"] == "/api/explode"
    assert any("secret internals" in str(r.exc_info) for r in caplog.records)


async def test_storage_errors_are_503_problems_without_the_database_location(
    store: SqlStore, settings: Settings, acme: dict[str, str]
) -> None:
    app = create_app(settings, store=store, worker=False)

    @app.get("/api/down")
    def down() -> None:
        raise StorageUnavailable("database postgresql://db.internal:5432/podium unavailable")

    async with serving(app) as client:
        response = await client.get("/api/down", headers=acme)
    assert_problem(response, 503, "storage_unavailable")
    assert "internal" not in response.text


async def test_problem_members(client: httpx.AsyncClient, acme: dict[str, str]) -> None:
    response = await client.get("/api/orchestrations/0123456789abcdef", headers=acme)
    body = assert_problem(response, 404, "not_found")
    assert body["type"] == "urn:podium:problem:not_found"
    assert body["title"] == "Not found"
    assert body["detail"] == "run 0123456789abcdef not found"


def test_issue_paths_name_the_field() -> None:
    assert issue_path(("body", "parameters")) == "body.parameters"
    assert issue_path(("query", "limit")) == "query.limit"
    assert issue_path(("body", "steps", 2, "depends_on", 0)) == "body.steps[2].depends_on[0]"


async def test_probes_report_liveness_and_readiness(
    client: httpx.AsyncClient, store: SqlStore
) -> None:
    health = await client.get("/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["revision"]
    assert ready.json()["workers"] == 0  # an API without workers is still ready
    store.register_worker("w1", 1)
    assert (await client.get("/readyz")).json()["workers"] == 1


async def test_readyz_is_503_when_the_schema_is_not_current(tmp_path: Path) -> None:
    unmigrated = SqlStore(Database(f"sqlite:///{tmp_path}/empty.db"))
    try:
        async with serving(create_app(Settings(), store=unmigrated, worker=False)) as client:
            response = await client.get("/readyz")
            assert "podium migrate" in assert_problem(response, 503, "not_ready")["detail"]
            assert (await client.get("/healthz")).status_code == 200
    finally:
        unmigrated.close()


async def test_readyz_is_503_when_the_database_is_unreachable() -> None:
    unreachable = SqlStore(Database("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"))
    try:
        async with serving(create_app(Settings(), store=unreachable, worker=False)) as client:
            response = await client.get("/readyz")
            body = assert_problem(response, 503, "not_ready")
            assert "127.0.0.1" not in response.text
            assert body["detail"] == "the database is unreachable"
    finally:
        unreachable.close()
