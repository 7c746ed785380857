"""``WebSocket /api/orchestrations/{runId}/ws``: the same events as the SSE stream, as JSON
messages, against a real uvicorn server on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedOK, InvalidStatus

from podium.api.app import create_app
from podium.api.routers.stream import event_hub
from podium.events import active_followers
from podium.settings import Settings
from podium.storage.store import SqlStore
from tests.api.helpers import bearer
from tests.api.test_stream_support import chain, launched, serve_in_thread, stored_log, until
from tests.support import wait_terminal

KeyMaker = Any


def ws_url(base: str, run_id: str, query: str = "") -> str:
    return f"{base.replace('http://', 'ws://')}/api/orchestrations/{run_id}/ws{query}"


async def receive_all(ws: ClientConnection) -> list[dict[str, Any]]:
    """Every message until the server closes normally."""
    messages = []
    async with asyncio.timeout(30):
        try:
            while True:
                messages.append(json.loads(await ws.recv()))
        except ConnectionClosedOK:
            pass
    assert ws.close_code == 1000
    return messages


async def test_websocket_sends_the_log_live_then_the_end_and_closes(
    store: SqlStore, settings: Settings, make_key: KeyMaker
) -> None:
    """A client connected while the run runs gets every event once, in order, identical to
    the stored log, then ``complete``, then a normal close."""
    headers = bearer(make_key("acme", "viewer"))
    app = create_app(settings, store=store, worker=True)
    async with serve_in_thread(app) as base:
        run_id = await launched(store, chain(10))
        async with connect(ws_url(base, run_id), additional_headers=headers) as ws:
            messages = await receive_all(ws)
    log = await asyncio.to_thread(stored_log, store, run_id)
    assert messages[:-1] == log
    assert messages[-1] == {
        "type": "complete",
        "runId": run_id,
        "status": "completed",
        "lastSequence": len(log),
        "outputs": store.get_run(run_id).outputs,
        "error": None,
    }


async def test_websocket_resumes_after_the_given_sequence(
    store: SqlStore, settings: Settings, make_key: KeyMaker
) -> None:
    """``?after=N`` resumes after event N, as on the SSE stream."""
    headers = bearer(make_key("acme", "viewer"))
    app = create_app(settings, store=store, worker=True)
    run_id = await launched(store, chain(3, seconds=0))
    async with serve_in_thread(app) as base:
        await wait_terminal(store, run_id)
        log = await asyncio.to_thread(stored_log, store, run_id)
        async with connect(ws_url(base, run_id, "?after=5"), additional_headers=headers) as ws:
            messages = await receive_all(ws)
    assert messages[:-1] == log[5:]
    assert messages[-1]["type"] == "complete"


async def test_websocket_refuses_another_organizations_run_and_missing_keys(
    store: SqlStore, settings: Settings, make_key: KeyMaker
) -> None:
    """The handshake of a run of another organization, or without a key when keys are
    required, is refused before the socket opens."""
    run_id = await launched(store, chain(1), organization="globex")
    app = create_app(settings, store=store, worker=False)
    async with serve_in_thread(app) as base:
        for headers in ({}, bearer(make_key("acme", "admin")), bearer("pod_nope_nope")):
            with pytest.raises(InvalidStatus):
                async with connect(ws_url(base, run_id), additional_headers=headers):
                    pass


async def test_websocket_accepts_a_stream_ticket_as_a_query_parameter(
    store: SqlStore, settings: Settings, make_key: KeyMaker
) -> None:
    """Browsers cannot set headers on a WebSocket: a stream ticket (POST /api/stream-tickets)
    comes as ``?ticket=`` instead of the key, which never appears in a URL."""
    key = make_key("acme", "viewer")
    app = create_app(settings, store=store, worker=True)
    run_id = await launched(store, chain(1, seconds=0))
    async with serve_in_thread(app) as base:
        await wait_terminal(store, run_id)
        async with httpx.AsyncClient(base_url=base) as http:
            issued = await http.post(
                "/api/stream-tickets", json={"runId": run_id}, headers=bearer(key)
            )
        assert issued.status_code == 201, issued.text
        async with connect(ws_url(base, run_id, f"?ticket={issued.json()['ticket']}")) as ws:
            messages = await receive_all(ws)
    assert messages[-1]["type"] == "complete"


async def test_a_client_that_goes_away_while_idle_releases_its_follower(
    store: SqlStore, settings: Settings, make_key: KeyMaker
) -> None:
    """A WebSocket client that closes while the run is idle does not leave its follower
    (or its wake-up subscription) behind."""
    headers = bearer(make_key("acme", "viewer"))
    run_id = await launched(store, chain(1))  # no worker: stays queued
    app = create_app(settings, store=store, worker=False)
    async with serve_in_thread(app) as base:
        async with connect(ws_url(base, run_id), additional_headers=headers) as ws:
            first = json.loads(await ws.recv())
            assert first["sequence"] == 1
            await until(lambda: len(active_followers(run_id)) == 1, what="follower")
        await until(lambda: not active_followers(run_id), what="follower released")
        assert event_hub(app.state).subscriptions(run_id) == 0
