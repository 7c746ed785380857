"""D6 at the API: 503 problem+json with ``Retry-After`` while the database is away, never a
500, and the same app answers again once it is back (no restart)."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest

from podium.api.app import create_app
from podium.storage import dialects
from podium.storage.database import Database
from podium.storage.store import SqlStore
from tests.api.helpers import ECHO, YAML, assert_problem, bearer, serving
from tests.faults.outages import Cut, ProxiedPostgres
from tests.support import fast_settings, wait_for


def assert_unavailable(response: httpx.Response) -> None:
    body = assert_problem(response, 503, "storage_unavailable")
    assert int(response.headers["Retry-After"]) >= 1
    assert body["retryAfterSeconds"] == int(response.headers["Retry-After"])
    assert "127.0.0.1" not in response.text  # where the database lives stays in the log


@pytest.mark.timeout(120)
async def test_d6_the_api_answers_503_with_retry_after_while_the_database_is_away(
    cuttable: Cut,
) -> None:
    """D6: during the cut a launch (a write) answers 503 problem+json with Retry-After, and
    on PostgreSQL so do reads and authentication; afterwards the same app serves again."""
    store = SqlStore.open(cuttable.url)
    try:
        _, key = store.create_key(organization="acme", role="admin", name="admin@acme")
        headers = bearer(key)
        settings = fast_settings(cuttable.url, require_keys=True, rate_limit=100_000)
        app = create_app(settings, store=store, worker=False)
        async with serving(app) as client:
            pushed = await client.post("/api/definitions", content=ECHO, headers=headers | YAML)
            assert pushed.status_code in (200, 201), pushed.text
            launch = {"definition": "greet"}
            cuttable.cut()
            try:
                response = await client.post("/api/orchestrations", json=launch, headers=headers)
                assert_unavailable(response)
                if not cuttable.writes_only:
                    assert_unavailable(await client.get("/api/orchestrations", headers=headers))
                    ready = await client.get("/readyz")
                    assert ready.status_code == 503
            finally:
                cuttable.restore()
            created = await client.post("/api/orchestrations", json=launch, headers=headers)
            assert created.status_code == 201, created.text
            listed = await client.get("/api/orchestrations", headers=headers)
            assert listed.status_code == 200
            assert [r["id"] for r in listed.json()["items"]] == [created.json()["id"]]
    finally:
        store.close()


@pytest.mark.timeout(120)
async def test_d6_dropped_and_stalled_connections_never_give_a_500(
    proxied_pg: ProxiedPostgres,
) -> None:
    """D6: connections reset under the API (a quick restart) are replaced by themselves;
    connections that stall answer once the stall ends or as 503; never a 500."""
    store = SqlStore.open(proxied_pg.url)
    try:
        _, key = store.create_key(organization="acme", role="admin", name="admin@acme")
        headers = bearer(key)
        settings = fast_settings(proxied_pg.url, require_keys=True, rate_limit=100_000)
        app = create_app(settings, store=store, worker=False)
        async with serving(app) as client:
            assert (await client.get("/api/orchestrations", headers=headers)).status_code == 200
            proxied_pg.proxy.drop()
            statuses = [
                (await client.get("/api/orchestrations", headers=headers)).status_code
                for _ in range(3)
            ]
            assert 500 not in statuses, statuses
            assert statuses[-1] == 200, statuses
            # a stall of 3 s: new connections time out (PODIUM_DB_CONNECT_TIMEOUT=2), pooled
            # ones wait; whichever, the answer is 200 or 503
            proxied_pg.proxy.stall()
            timer = threading.Timer(3.0, proxied_pg.proxy.forward)
            timer.start()
            try:
                responses = await asyncio.gather(
                    *(client.get("/api/orchestrations", headers=headers) for _ in range(3))
                )
            finally:
                timer.join()
            for r in responses:
                assert r.status_code in (200, 503), r.text
                if r.status_code == 503:
                    assert_unavailable(r)
            after = await client.get("/api/orchestrations", headers=headers)
            assert after.status_code == 200
    finally:
        store.close()


@pytest.mark.timeout(60)
async def test_d6_the_listener_reconnects_by_itself(proxied_pg: ProxiedPostgres) -> None:
    """D6: the LISTEN connection of a process behind a refused-then-restored database comes
    back by itself and delivers wake-ups from other processes again."""
    behind = Database(proxied_pg.url)
    direct = Database(proxied_pg.server_url)
    received: list[str] = []
    try:
        behind.add_listener(received.append)
        await wait_for(lambda: list(received), lambda r: "reconnected" in r)
        proxied_pg.proxy.refuse()
        await wait_for(lambda: behind.availability.failures, lambda n: n > 0, timeout=10)
        received.clear()
        proxied_pg.proxy.forward()
        await wait_for(lambda: list(received), lambda r: "reconnected" in r, timeout=20)
        direct.write(lambda conn: dialects.send_wakeup(conn, "steps:after-outage"))
        await wait_for(lambda: list(received), lambda r: "steps:after-outage" in r, timeout=10)
    finally:
        behind.close()
        direct.close()
