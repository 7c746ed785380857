"""``podium webhooks`` on the local database and over ``--url`` (a real server on loopback),
on SQLite and PostgreSQL: endpoints added, shown, disabled, rotated and tested against a
real receiver, dead letters (made by a real dispatcher) listed and replayed, in both places;
bad input and missing rights are one ``error:`` line with a non-zero exit."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from podium.engine.launcher import launch
from podium.events.webhooks.signing import new_secret
from tests.api.test_stream_support import chain
from tests.cli.conftest import Where
from tests.support import definition, wait_for
from tests.webhooks.conftest import dispatching, fast_webhook_settings
from tests.webhooks.receiver import Receiver, verify


@pytest.fixture(autouse=True)
def loopback_webhooks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Webhook URLs on loopback are allowed, for the CLI and for the server alike (the
    receiver listens there); set before either side reads it."""
    monkeypatch.setenv("PODIUM_WEBHOOK_URL_ALLOWLIST", "loopback")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    yield r
    r.close()


def test_add_show_disable_rotate_and_test(where: Where, receiver: Receiver) -> None:
    added = where.json("webhooks", "add", receiver.url, "--event", "orchestration.run.*")
    assert added["secret"].startswith("whsec_")
    assert (added["organizationSlug"], added["eventTypes"]) == ("acme", ["orchestration.run.*"])
    endpoint = added["id"]
    listed = where.json("webhooks", "list")["items"]
    assert [e["id"] for e in listed] == [endpoint]
    assert "secret" not in listed[0]
    code, table, _ = where.run("webhooks", "list")
    assert code == 0
    assert endpoint in table
    code, shown, _ = where.run("webhooks", "show", endpoint)
    assert code == 0
    assert f"url          {receiver.url}\n" in shown
    assert "whsec_" not in shown

    assert where.run("webhooks", "disable", endpoint)[:2] == (0, f"endpoint {endpoint} disabled\n")
    assert where.json("webhooks", "show", endpoint)["enabled"] is False
    assert where.run("webhooks", "enable", endpoint)[:2] == (0, f"endpoint {endpoint} enabled\n")
    assert where.store.webhooks.get_endpoint(endpoint).enabled

    rotated = where.json("webhooks", "rotate", endpoint)
    assert rotated["secret"] != added["secret"]
    assert rotated["previousSecretExpiresAt"] is not None

    code, out, _ = where.run("webhooks", "test", endpoint)
    assert (code, out) == (0, f"{receiver.url}: ok (HTTP 200)\n")
    [request] = receiver.snapshot()
    # signed with both secrets during the overlap: the new one verifies it
    assert verify(rotated["secret"], request)["type"] == "orchestration.webhook.test"
    receiver.mode = "500"
    result = where.run("webhooks", "test", endpoint, "--json")
    assert result[0] == 1
    assert '"statusCode": 500' in result[1]
    assert where.store.webhooks.list_deliveries(None) == []  # a test stores nothing


def test_dead_letters_are_listed_and_replayed(where: Where, receiver: Receiver) -> None:
    receiver.mode = "500"
    store = where.store
    endpoint = store.webhooks.create_endpoint(
        organization="acme",
        url=receiver.url,
        secret=new_secret(),
        event_types=["orchestration.run.created"],
    )
    run_ids = [launch(store, definition(chain(1)), {}, organization="acme") for _ in range(2)]

    async def fail_them() -> None:
        settings = fast_webhook_settings(retry_schedule=(0.05,))
        async with dispatching(store.webhooks, settings):
            await wait_for(store.webhooks.status_counts, lambda c: c.get("dead") == 2)

    asyncio.run(fail_them())
    dead = where.json("webhooks", "dead")["items"]
    assert sorted(d["runId"] for d in dead) == sorted(run_ids)
    assert all(d["lastStatusCode"] == 500 for d in dead)
    assert len(where.json("webhooks", "dead", "--endpoint", endpoint.id)["items"]) == 2
    assert where.json("webhooks", "dead", "--since", "2999-01-01")["items"] == []
    code, table, _ = where.run("webhooks", "dead")
    assert code == 0
    assert dead[0]["id"] in table

    first = dead[0]
    code, out, _ = where.run("webhooks", "replay", first["id"])
    assert (code, out) == (0, f"delivery {first['id']} queued again ({first['webhookId']})\n")
    assert [d["id"] for d in where.json("webhooks", "dead")["items"]] == [dead[1]["id"]]
    code, out, _ = where.run(
        "webhooks", "replay", "--endpoint", endpoint.id, "--since", "2000-01-01T00:00"
    )
    assert (code, out) == (0, f"1 dead letter(s) of {endpoint.id} queued again\n")
    assert where.json("webhooks", "dead")["items"] == []
    assert store.webhooks.status_counts() == {"pending": 2}


def test_bad_input_is_one_line_and_a_non_zero_exit(where: Where) -> None:
    code, line = where.error("webhooks", "add", "http://10.1.2.3/hook")
    assert code == 2  # the URL guard of the side that stores it refused the address
    assert "10.1.2.3, a private address, which is not allowed" in line
    assert where.store.webhooks.list_endpoints("acme") == []
    code, line = where.error("webhooks", "show", "no-such-endpoint")
    assert code == 1
    assert "not found" in line
    assert where.error("webhooks", "replay")[0] == 2  # neither DELIVERY nor --endpoint
    code, line = where.error("webhooks", "dead", "--since", "yesterday")
    assert code == 2
    assert "ISO 8601" in line
    code, line = where.error("webhooks", "add", "http://127.0.0.1:9/", "--event", "nope*")
    assert code == 2  # checked before anything is sent, naming the option
    assert "'--event'" in line
    assert "'nope*'" in line


def test_the_organization_is_the_local_operators_or_the_api_keys(where: Where) -> None:
    """Locally --org picks the organization; on a server the key's organization is used,
    --org is a usage error, and changes need the admin role."""
    theirs = where.store.webhooks.create_endpoint(
        organization="globex", url="http://127.0.0.1:9/hook", secret=new_secret()
    )
    if not where.remote:
        assert [e["id"] for e in where.json("webhooks", "list", "--org", "globex")["items"]] == [
            theirs.id
        ]
        assert where.json("webhooks", "list")["items"] == []  # acme's: none
        return
    assert where.error("webhooks", "show", theirs.id) == (
        1,
        f"error: webhook endpoint {theirs.id} not found",
    )
    code, line = where.error("webhooks", "list", "--org", "globex")
    assert code == 2
    assert "--org names an organization of the local database" in line
    _, operator = where.store.create_key(organization="acme", role="operator", name="op@acme")
    where.api_key = operator
    assert where.json("webhooks", "list")["items"] == []
    code, line = where.error("webhooks", "add", "http://127.0.0.1:9/hook")
    assert code == 1
    assert "needs the admin role" in line
