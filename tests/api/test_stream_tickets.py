"""Stream tickets (``POST /api/stream-tickets``): a browser's way onto ``/stream`` and ``/ws``
without an ``Authorization`` header. A ticket works once, for one run, for 60 s, and never
appears in the access log."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from podium.api.app import create_app
from podium.settings import Settings
from podium.storage.store import SqlStore
from podium.storage.webhooks import WebhookStore
from tests.api.conftest import KeyMaker
from tests.api.helpers import bearer
from tests.api.test_stream_support import chain, launched, serve_in_thread
from tests.support import wait_terminal


async def ticket_for(base: str, key: str, run_id: str) -> str:
    async with httpx.AsyncClient(base_url=base) as http:
        response = await http.post(
            "/api/stream-tickets", json={"runId": run_id}, headers=bearer(key)
        )
    assert response.status_code == 201, response.text
    body = response.json()
    expires = datetime.fromisoformat(body["expiresAt"])
    assert timedelta(seconds=55) < expires - datetime.now(UTC) <= timedelta(seconds=60)
    ticket: str = body["ticket"]
    return ticket


async def stream_status(base: str, run_id: str, ticket: str) -> int:
    async with httpx.AsyncClient(base_url=base) as http:
        response = await http.get(f"/api/orchestrations/{run_id}/stream?ticket={ticket}")
    return response.status_code


@pytest.fixture
async def served(store: SqlStore, settings: Settings) -> AsyncIterator[str]:
    app = create_app(settings, store=store, worker=True)
    async with serve_in_thread(app) as base:
        yield base


async def test_a_ticket_works_once(served: str, store: SqlStore, make_key: KeyMaker) -> None:
    run_id = await launched(store, chain(1, seconds=0))
    await wait_terminal(store, run_id)
    ticket = await ticket_for(served, make_key("acme", "viewer"), run_id)
    assert await stream_status(served, run_id, ticket) == 200
    assert await stream_status(served, run_id, ticket) == 401


async def test_a_ticket_is_for_one_run(served: str, store: SqlStore, make_key: KeyMaker) -> None:
    key = make_key("acme", "viewer")
    first = await launched(store, chain(1, seconds=0))
    second = await launched(store, chain(1, seconds=0))
    await wait_terminal(store, second)
    ticket = await ticket_for(served, key, first)
    assert await stream_status(served, second, ticket) == 401


async def test_a_ticket_expires(served: str, store: SqlStore, make_key: KeyMaker) -> None:
    run_id = await launched(store, chain(1, seconds=0))
    ticket = await ticket_for(served, make_key("acme", "viewer"), run_id)
    later = datetime.now(UTC) + timedelta(seconds=61)
    assert WebhookStore(store.db).redeem_ticket(ticket, now=later) is None


async def test_no_ticket_for_another_organizations_run(
    served: str, store: SqlStore, make_key: KeyMaker
) -> None:
    run_id = await launched(store, chain(1, seconds=0), organization="globex")
    async with httpx.AsyncClient(base_url=served) as http:
        response = await http.post(
            "/api/stream-tickets", json={"runId": run_id}, headers=bearer(make_key("acme"))
        )
    assert response.status_code == 404


async def test_the_ticket_never_reaches_the_access_log(
    store: SqlStore, settings: Settings, make_key: KeyMaker
) -> None:
    """The gate removes ``ticket=`` from the query string before uvicorn logs the request."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    access = logging.getLogger("uvicorn.access")
    handler = Keep()
    try:
        app = create_app(settings, store=store, worker=True)
        run_id = await launched(store, chain(1, seconds=0))
        async with serve_in_thread(app) as base:
            access.addHandler(handler)  # after uvicorn configured its loggers
            access.setLevel(logging.INFO)
            await wait_terminal(store, run_id)
            ticket = await ticket_for(base, make_key("acme", "viewer"), run_id)
            assert await stream_status(base, run_id, ticket) == 200
            await asyncio.sleep(0)  # the log line is written when the response ends
    finally:
        access.removeHandler(handler)
    logged = [r.getMessage() for r in records]
    assert any("/stream" in line for line in logged), logged
    assert not any(ticket in line for line in logged)
