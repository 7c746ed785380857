"""``/api/admin/webhooks``: registration (secret shown once), organization scoping, the URL
guard (N1) at registration and at connect time, test events, deliveries and replays."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from podium.api.app import create_app
from podium.engine.launcher import launch
from podium.net.urlguard import UrlGuard
from podium.settings import Settings
from podium.storage.store import SqlStore
from podium.storage.webhooks import WebhookStore
from tests.api.conftest import KeyMaker
from tests.api.helpers import assert_problem, bearer, serving
from tests.api.test_stream_support import chain
from tests.support import definition, fast_settings, wait_for
from tests.webhooks.conftest import LOOPBACK, dispatching, fast_webhook_settings
from tests.webhooks.receiver import Receiver, verify

BASE = "/api/admin/webhooks"


@pytest.fixture
def settings(db_url: str) -> Settings:
    return fast_settings(db_url, require_keys=True, rate_limit=100_000)


@pytest.fixture
async def client(store: SqlStore, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, store=store, worker=False)
    app.state.webhook_guard = LOOPBACK
    async with serving(app) as c:
        yield c


@pytest.fixture
def make_key(store: SqlStore) -> KeyMaker:
    def make(organization: str, role: str = "admin", name: str | None = None) -> str:
        return store.create_key(organization=organization, role=role, name=name or role)[1]

    return make


@pytest.fixture
def acme(make_key: KeyMaker) -> dict[str, str]:
    return bearer(make_key("acme"))


@pytest.fixture
def globex(make_key: KeyMaker) -> dict[str, str]:
    return bearer(make_key("globex"))


async def register(
    client: httpx.AsyncClient, headers: dict[str, str], url: str, **body: Any
) -> dict[str, Any]:
    response = await client.post(BASE, json={"url": url, **body}, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_registration_shows_the_secret_once(
    client: httpx.AsyncClient, acme: dict[str, str], receiver: Receiver
) -> None:
    created = await register(
        client, acme, receiver.url, eventTypes=["orchestration.run.*"], description="ops"
    )
    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[6:])) == 32
    shown = (await client.get(f"{BASE}/{created['id']}", headers=acme)).json()
    listed = (await client.get(BASE, headers=acme)).json()["items"]
    assert "secret" not in shown
    assert all("secret" not in e for e in listed)
    assert shown["eventTypes"] == ["orchestration.run.*"]
    assert shown["enabled"] is True
    assert [e["id"] for e in listed] == [created["id"]]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"eventTypes": ["orchestration.run.**"]}, "eventTypes"),
        ({"secret": "not-a-secret"}, "secret"),
        ({"rateLimit": 0}, "rateLimit"),
        ({"url": "x" * 3000}, "url"),
    ],
)
async def test_bad_registrations_are_422_naming_the_field(
    client: httpx.AsyncClient,
    acme: dict[str, str],
    receiver: Receiver,
    body: dict[str, Any],
    where: str,
) -> None:
    response = await client.post(BASE, json={"url": receiver.url, **body}, headers=acme)
    problem = assert_problem(response, 422)
    assert where in response.text, problem


async def test_a_viewer_cannot_register(
    client: httpx.AsyncClient, make_key: KeyMaker, receiver: Receiver
) -> None:
    response = await client.post(
        BASE, json={"url": receiver.url}, headers=bearer(make_key("acme", "viewer"))
    )
    assert_problem(response, 403)


async def test_another_organizations_endpoint_is_not_found(
    client: httpx.AsyncClient, acme: dict[str, str], globex: dict[str, str], receiver: Receiver
) -> None:
    """Scoping: every route taking an endpoint id answers 404 to another organization."""
    endpoint_id = (await register(client, acme, receiver.url))["id"]
    calls = [
        ("GET", f"{BASE}/{endpoint_id}", None),
        ("PATCH", f"{BASE}/{endpoint_id}", {"enabled": False}),
        ("DELETE", f"{BASE}/{endpoint_id}", None),
        ("POST", f"{BASE}/{endpoint_id}/rotate-secret", None),
        ("POST", f"{BASE}/{endpoint_id}/test", None),
        ("POST", f"{BASE}/deliveries/replay", {"endpointId": endpoint_id}),
    ]
    for method, url, body in calls:
        response = await client.request(method, url, json=body, headers=globex)
        assert_problem(response, 404)
    assert (await client.get(BASE, headers=globex)).json()["items"] == []
    assert receiver.snapshot() == []


async def test_update_rotate_and_delete(
    client: httpx.AsyncClient, acme: dict[str, str], receiver: Receiver
) -> None:
    created = await register(client, acme, receiver.url)
    url = f"{BASE}/{created['id']}"
    changed = (
        await client.patch(url, json={"enabled": False, "rateLimit": 5}, headers=acme)
    ).json()
    assert changed["enabled"] is False
    assert changed["rateLimit"] == 5
    rotated = (await client.post(f"{url}/rotate-secret", headers=acme)).json()
    assert rotated["secret"] != created["secret"]
    assert rotated["previousSecretExpiresAt"]
    assert (await client.delete(url, headers=acme)).status_code == 204
    assert_problem(await client.get(url, headers=acme), 404)


async def test_a_test_event_is_signed_and_reports_the_answer(
    client: httpx.AsyncClient, acme: dict[str, str], receiver: Receiver
) -> None:
    created = await register(client, acme, receiver.url)
    answer = (await client.post(f"{BASE}/{created['id']}/test", headers=acme)).json()
    assert answer["ok"] is True
    assert answer["statusCode"] == 200
    (request,) = receiver.snapshot()
    assert verify(created["secret"], request)["type"] == "orchestration.webhook.test"
    assert request.webhook_id == answer["webhookId"]
    receiver.mode = "500"
    failed = (await client.post(f"{BASE}/{created['id']}/test", headers=acme)).json()
    assert failed == {**failed, "ok": False, "statusCode": 500}


async def test_the_url_guard_refuses_private_addresses_at_registration(
    store: SqlStore, settings: Settings, acme: dict[str, str]
) -> None:
    """N1: with the default guard, loopback, private and link-local webhook URLs are 422."""
    app = create_app(settings, store=store, worker=False)
    app.state.webhook_guard = UrlGuard(subject="WEBHOOK")
    async with serving(app) as client:
        for url in ("http://127.0.0.1:9/hook", "http://10.0.0.1/", "http://169.254.169.254/"):
            response = await client.post(BASE, json={"url": url}, headers=acme)
            problem = assert_problem(response, 422, "url_not_allowed")
            assert "PODIUM_WEBHOOK_URL_ALLOWLIST" in problem["detail"]


async def test_the_url_guard_refuses_at_connect_time(
    store: SqlStore, webhooks: WebhookStore, receiver: Receiver
) -> None:
    """N1: an endpoint admitted earlier is refused when the address is not allowed now."""
    ep = webhooks.create_endpoint(organization="acme", url=receiver.url, secret=_secret())
    launch(store, definition(chain(1)), {}, organization="acme")
    strict = UrlGuard(subject="WEBHOOK")
    async with dispatching(webhooks, fast_webhook_settings(retry_schedule=(60.0,)), guard=strict):
        first = await wait_for(
            lambda: webhooks.list_deliveries(None, endpoint_id=ep.id, status="failed"), bool
        )
    assert "address refused" in (first[0].last_error or "")
    assert receiver.snapshot() == []


async def test_dead_letters_are_listed_and_replayed(
    client: httpx.AsyncClient,
    acme: dict[str, str],
    globex: dict[str, str],
    store: SqlStore,
    webhooks: WebhookStore,
    receiver: Receiver,
) -> None:
    """W3: dead letters listed with filters; one replayed, then the rest in bulk."""
    receiver.mode = "500"
    created = await register(client, acme, receiver.url, eventTypes=["orchestration.run.created"])
    run_ids = [launch(store, definition(chain(1)), {}, organization="acme") for _ in range(3)]
    async with dispatching(webhooks, fast_webhook_settings(retry_schedule=(0.05,))):
        await wait_for(lambda: webhooks.status_counts(), lambda c: c.get("dead") == 3)
    dead = (await client.get(f"{BASE}/deliveries", params={"status": "dead"}, headers=acme)).json()
    assert sorted(d["runId"] for d in dead["items"]) == sorted(run_ids)
    assert all(d["lastStatusCode"] == 500 and d["webhookId"] for d in dead["items"])
    one_run = await client.get(f"{BASE}/deliveries", params={"run": run_ids[0]}, headers=acme)
    assert [d["runId"] for d in one_run.json()["items"]] == [run_ids[0]]
    assert (await client.get(f"{BASE}/deliveries", headers=globex)).json()["items"] == []
    first = dead["items"][0]["id"]
    assert_problem(await client.post(f"{BASE}/deliveries/{first}/replay", headers=globex), 404)
    replayed = await client.post(f"{BASE}/deliveries/{first}/replay", headers=acme)
    assert replayed.json()["status"] == "pending"
    assert_problem(await client.post(f"{BASE}/deliveries/{first}/replay", headers=acme), 409)
    bulk = await client.post(
        f"{BASE}/deliveries/replay",
        json={"endpointId": created["id"], "since": "2000-01-01T00:00:00Z"},
        headers=acme,
    )
    assert bulk.json() == {"replayed": 2}
    receiver.mode = "ok"
    async with dispatching(webhooks):
        await wait_for(lambda: webhooks.status_counts(), lambda c: c == {"delivered": 3})
    assert sorted(verify(created["secret"], r)["runId"] for r in receiver.accepted()) == sorted(
        run_ids
    )


def _secret() -> str:
    from podium.events.webhooks.signing import new_secret

    return new_secret()
