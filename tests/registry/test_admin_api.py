"""``/api/admin/agents`` and ``/api/admin/routing-policy`` over HTTP (in-process, keys
required): success and error paths, other organizations' agents answering 404, roles."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from podium.agents.base import AgentError
from podium.agents.registry.admission import AgentChecks
from podium.api.app import create_app
from podium.api.routers import admin_agents
from podium.net.urlguard import UrlGuard
from podium.storage.store import SqlStore
from tests.api.helpers import assert_problem, bearer, serving
from tests.registry.conftest import FakeDns
from tests.support import fast_settings

AGENTS = "/api/admin/agents"
POLICY = "/api/admin/routing-policy"
DNS = {
    "translator.example": ["93.184.216.34"],
    "sneaky.example": ["10.0.0.7"],
    "down.example": ["93.184.216.35"],
    "evil-card.example": ["93.184.216.36"],
}


def card(url: str, version: str = "1.0.0") -> dict[str, Any]:
    return {
        "name": "Translator",
        "description": "Translates",
        "version": version,
        "url": url,
        "protocolVersion": "1.0",
        "protocolBinding": "JSONRPC",
        "capabilities": {"streaming": True, "pushNotifications": False},
        "skills": [{"id": "translate", "name": "Translate", "description": "d", "tags": ["t"]}],
    }


class FakeCards:
    """Answers cards instead of the network; counts fetches."""

    def __init__(self) -> None:
        self.fetched: list[str] = []
        self.version = "1.0.0"

    async def __call__(self, url: str, guard: UrlGuard) -> dict[str, Any]:
        self.fetched.append(url)
        if "down.example" in url:
            raise AgentError("agent_unreachable", f"agent card at {url} is unreachable")
        if "evil-card" in url:
            return card("http://169.254.169.254/latest")
        return card(url, self.version)


@pytest.fixture
def cards() -> FakeCards:
    return FakeCards()


@pytest.fixture
async def client(
    store: SqlStore, db_url: str, cards: FakeCards
) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(
        fast_settings(db_url, require_keys=True, rate_limit=100_000), store=store, worker=False
    )
    if not any(getattr(r, "path", "") == AGENTS for r in app.routes):
        app.include_router(admin_agents.router)  # until the app includes it itself
    app.state.agent_checks = AgentChecks(
        url_guard=UrlGuard(resolver=FakeDns(DNS)),
        fetch_card=cards,
        python_modules=("podium.agents.demo", "tests.registry"),
    )
    async with serving(app) as c:
        yield c


@pytest.fixture
def keys(store: SqlStore) -> dict[str, dict[str, str]]:
    def key(org: str, role: str) -> dict[str, str]:
        return bearer(store.create_key(organization=org, role=role, name=f"{role}@{org}")[1])

    return {
        "acme": key("acme", "admin"),
        "acme-viewer": key("acme", "viewer"),
        "acme-operator": key("acme", "operator"),
        "globex": key("globex", "admin"),
        "global": key("global", "admin"),
    }


async def register(
    client: httpx.AsyncClient, headers: dict[str, str], **body: Any
) -> httpx.Response:
    return await client.post(AGENTS, json=body, headers=headers)


async def test_register_show_update_and_delete_a_python_agent(
    client: httpx.AsyncClient, keys: dict[str, dict[str, str]]
) -> None:
    created = await register(
        client,
        keys["acme"],
        slug="shouter",
        target="tests.registry.agents:shout",
        concurrencyLimit=3,
        timeoutSeconds=20,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert {k: body[k] for k in ("slug", "organizationSlug", "kind", "target", "active")} == {
        "slug": "shouter",
        "organizationSlug": "acme",
        "kind": "python",
        "target": "tests.registry.agents:shout",
        "active": True,
    }
    assert (body["concurrencyLimit"], body["timeoutSeconds"]) == (3, 20)
    assert body["health"] == {
        "status": "unknown",
        "lastSuccessAt": None,
        "lastErrorAt": None,
        "lastError": None,
    }

    shown = await client.get(f"{AGENTS}/shouter", headers=keys["acme-viewer"])
    assert shown.status_code == 200
    assert shown.json()["target"] == "tests.registry.agents:shout"

    patched = await client.patch(
        f"{AGENTS}/shouter", json={"active": False, "concurrencyLimit": None}, headers=keys["acme"]
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["active"], patched.json()["concurrencyLimit"]) == (False, None)
    assert patched.json()["timeoutSeconds"] == 20  # not given: unchanged

    listed = await client.get(AGENTS, headers=keys["acme-viewer"])
    slugs = {(a["slug"], a["organizationSlug"], a["builtin"]) for a in listed.json()["items"]}
    assert ("shouter", "acme", False) in slugs
    assert ("echo", "global", True) in slugs

    deleted = await client.delete(f"{AGENTS}/shouter", headers=keys["acme"])
    assert deleted.status_code == 204
    assert_problem(await client.get(f"{AGENTS}/shouter", headers=keys["acme"]), 404, "not_found")


async def test_register_an_a2a_agent_caches_its_card_and_refresh_fetches_it_again(
    client: httpx.AsyncClient, keys: dict[str, dict[str, str]], cards: FakeCards
) -> None:
    url = "https://translator.example/a2a"
    created = await register(client, keys["acme"], slug="translator", url=url)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["kind"] == "a2a"
    assert body["url"] == url
    assert body["card"]["version"] == "1.0.0"
    assert body["card"]["skills"][0]["id"] == "translate"
    assert body["cardDocument"]["protocolBinding"] == "JSONRPC"
    cards.version = "1.1.0"
    refreshed = await client.post(f"{AGENTS}/translator/refresh", headers=keys["acme"])
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["card"]["version"] == "1.1.0"
    assert cards.fetched == [url, url]


@pytest.mark.parametrize(
    ("url", "address", "reason"),
    [
        ("http://127.0.0.1:9700/agent", "127.0.0.1", "loopback"),
        ("http://169.254.169.254/latest/meta-data", "169.254.169.254", "link-local"),
        ("http://[::ffff:127.0.0.1]/", "::ffff:7f00:1", "loopback"),
        ("https://sneaky.example/a2a", "10.0.0.7", "private"),
    ],
)
async def test_registration_refuses_urls_that_reach_private_addresses(
    client: httpx.AsyncClient,
    keys: dict[str, dict[str, str]],
    cards: FakeCards,
    url: str,
    address: str,
    reason: str,
) -> None:
    """N1: at registration, a 422 problem naming the resolved address."""
    response = await register(client, keys["acme"], slug="bad", url=url)
    problem = assert_problem(response, 422, "url_not_allowed")
    assert address in problem["detail"]
    assert (problem["resolvedAddress"], problem["reason"]) == (address, reason)
    assert cards.fetched == []  # refused before any request


async def test_a_card_naming_a_private_endpoint_is_refused(
    client: httpx.AsyncClient, keys: dict[str, dict[str, str]]
) -> None:
    response = await register(client, keys["acme"], slug="evil", url="https://evil-card.example/")
    problem = assert_problem(response, 422, "url_not_allowed")
    assert "169.254.169.254" in problem["detail"]


async def test_registration_errors(
    client: httpx.AsyncClient, keys: dict[str, dict[str, str]]
) -> None:
    acme = keys["acme"]
    down = assert_problem(
        await register(client, acme, slug="down", url="https://down.example/"),
        422,
        "agent_card_unavailable",
    )
    assert "unreachable" in down["detail"]
    assert down["errorCode"] == "agent_unreachable"
    outside = assert_problem(
        await register(client, acme, slug="rce", target="os:system"), 422, "validation_error"
    )
    assert "'os'" in outside["issues"][0]["message"]
    for escape in (
        "podium.agents.demo:asyncio.create_subprocess_shell",
        "podium.agents.demo:_text",
    ):
        reached = assert_problem(await register(client, acme, slug="esc", target=escape), 422)
        assert "public function" in reached["issues"][0]["message"]
    missing = assert_problem(
        await register(client, acme, slug="ghost", target="tests.registry.agents:nothing"), 422
    )
    assert missing["issues"][0]["path"] == "target"
    both = assert_problem(
        await register(client, acme, slug="x", kind="python", url="https://translator.example/"),
        422,
    )
    assert {i["path"] for i in both["issues"]} == {"target", "url"}
    assert_problem(await register(client, acme, slug="bad slug!", target="a:b"), 422)
    assert (
        await register(client, acme, slug="dup", target="podium.agents.demo:echo")
    ).status_code == 201
    assert_problem(
        await register(client, acme, slug="dup", target="podium.agents.demo:echo"), 409, "conflict"
    )
    assert_problem(
        await client.post(f"{AGENTS}/dup/refresh", headers=acme), 422, "validation_error"
    )
    assert_problem(
        await client.patch(
            f"{AGENTS}/dup", json={"url": "https://translator.example/"}, headers=acme
        ),
        422,
    )
    assert_problem(await client.patch(f"{AGENTS}/echo", json={"active": False}, headers=acme), 404)


async def test_other_organizations_agents_answer_404(
    client: httpx.AsyncClient, keys: dict[str, dict[str, str]]
) -> None:
    """A1 for the agent routes: as if the agent did not exist."""
    await register(client, keys["acme"], slug="secret-agent", target="podium.agents.demo:echo")
    globex = keys["globex"]
    calls = [
        client.get(f"{AGENTS}/secret-agent", headers=globex),
        client.patch(f"{AGENTS}/secret-agent", json={"active": False}, headers=globex),
        client.delete(f"{AGENTS}/secret-agent", headers=globex),
        client.post(f"{AGENTS}/secret-agent/refresh", headers=globex),
    ]
    for pending in calls:
        response = await pending
        assert_problem(response, 404, "not_found")
        assert "acme" not in response.text
    listed = await client.get(AGENTS, headers=globex)
    assert "secret-agent" not in listed.text
    assert (await client.get(f"{AGENTS}/secret-agent", headers=keys["acme"])).json()["active"]


async def test_viewers_and_operators_read_but_only_admins_change(
    client: httpx.AsyncClient, keys: dict[str, dict[str, str]]
) -> None:
    await register(client, keys["acme"], slug="a", target="podium.agents.demo:echo")
    for role in ("acme-viewer", "acme-operator"):
        headers = keys[role]
        assert (await client.get(AGENTS, headers=headers)).status_code == 200
        assert (await client.get(f"{AGENTS}/a", headers=headers)).status_code == 200
        assert (await client.get(POLICY, headers=headers)).status_code == 200
        for response in (
            await register(client, headers, slug="b", target="podium.agents.demo:echo"),
            await client.patch(f"{AGENTS}/a", json={"active": False}, headers=headers),
            await client.delete(f"{AGENTS}/a", headers=headers),
            await client.post(f"{AGENTS}/a/refresh", headers=headers),
            await client.put(POLICY, json={}, headers=headers),
        ):
            assert_problem(response, 403, "forbidden")
    assert_problem(await client.get(AGENTS), 401)


async def test_global_agents_are_seen_by_all_and_changed_only_by_global_admins(
    client: httpx.AsyncClient, keys: dict[str, dict[str, str]]
) -> None:
    created = await register(
        client, keys["global"], slug="shared", target="podium.agents.demo:echo"
    )
    assert created.json()["organizationSlug"] == "global"
    seen = await client.get(f"{AGENTS}/shared", headers=keys["acme-viewer"])
    assert seen.json()["organizationSlug"] == "global"
    assert_problem(
        await client.patch(f"{AGENTS}/shared", json={"active": False}, headers=keys["acme"]), 403
    )
    changed = await client.patch(f"{AGENTS}/shared", json={"active": False}, headers=keys["global"])
    assert changed.status_code == 200
    assert changed.json()["active"] is False


async def test_the_runbook_check_shows_a_built_in_agent(
    client: httpx.AsyncClient, keys: dict[str, dict[str, str]]
) -> None:
    """Runbook section 4, check 1: ``GET /api/admin/agents/:slug`` for the slug a step names."""
    shown = (await client.get(f"{AGENTS}/uppercase", headers=keys["acme-viewer"])).json()
    assert (shown["slug"], shown["kind"], shown["target"], shown["active"], shown["builtin"]) == (
        "uppercase",
        "python",
        "podium.agents.demo:uppercase",
        True,
        True,
    )
    missing = assert_problem(await client.get(f"{AGENTS}/ghost", headers=keys["acme"]), 404)
    assert "ghost" in missing["detail"]


async def test_routing_policy_is_read_by_all_and_replaced_by_global_admins(
    client: httpx.AsyncClient, keys: dict[str, dict[str, str]], store: SqlStore
) -> None:
    empty = await client.get(POLICY, headers=keys["acme-viewer"])
    assert empty.json() == {
        "mode": "first-match",
        "default": "allow",
        "patterns": {},
        "rules": [],
        "rateLimits": [],
    }
    policy = {
        "rules": [
            {
                "name": "no-pii-to-external",
                "effect": "deny",
                "kinds": ["a2a"],
                "inputPatterns": ["card-number"],
            }
        ],
        "rateLimits": [{"name": "slow-down", "scope": "organization", "ratePerMinute": 600}],
    }
    assert_problem(await client.put(POLICY, json=policy, headers=keys["acme"]), 403)
    stored = await client.put(POLICY, json=policy, headers=keys["global"])
    assert stored.status_code == 200, stored.text
    assert stored.json()["rules"][0]["name"] == "no-pii-to-external"
    again = (await client.get(POLICY, headers=keys["acme"])).json()
    assert again["rateLimits"][0] == {
        "name": "slow-down",
        "scope": "organization",
        "ratePerMinute": 600,
        "maxWaitSeconds": 0.0,
    }
    assert store.get_config("routing-policy") is not None


async def test_an_invalid_routing_policy_is_refused_with_every_problem(
    client: httpx.AsyncClient, keys: dict[str, dict[str, str]], store: SqlStore
) -> None:
    bad = {
        "rules": [
            {"name": "a", "effect": "deny", "inputPatterns": ["passport"]},
            {"name": "a", "effect": "allow"},
        ],
        "patterns": {"broken": "("},
    }
    problem = assert_problem(await client.put(POLICY, json=bad, headers=keys["global"]), 422)
    assert {i["path"] for i in problem["issues"]} == {
        "patterns.broken",
        "rules[1].name",
        "rules[0].inputPatterns[0]",
    }
    schema = assert_problem(
        await client.put(
            POLICY, json={"rules": [{"name": "x", "effect": "maybe"}]}, headers=keys["global"]
        ),
        422,
    )
    assert schema["issues"][0]["path"].endswith("rules[0].effect")
    assert store.get_config("routing-policy") is None


async def test_an_organization_admin_sees_and_changes_only_its_own_routing_rules(
    client: httpx.AsyncClient, keys: dict[str, dict[str, str]], store: SqlStore
) -> None:
    """Issue 7 §4 (scoped policy): acme's admin sees the rules that apply to acme and
    replaces only acme's own; globex's rules stay hidden from it and untouched; only a
    global admin sees the whole document."""
    shared = {"name": "shared-deny", "effect": "deny", "kinds": ["a2a"]}
    globex_rule = {"name": "globex-only", "effect": "deny", "organizations": ["globex"]}
    acme_old = {"name": "acme-old", "effect": "deny", "organizations": ["acme"]}
    whole = {"rules": [shared, globex_rule, acme_old]}
    assert (await client.put(POLICY, json=whole, headers=keys["global"])).status_code == 200

    seen = (await client.get(POLICY, headers=keys["acme"])).json()
    assert [r["name"] for r in seen["rules"]] == ["shared-deny", "acme-old"]
    assert [
        r["name"] for r in (await client.get(POLICY, headers=keys["globex"])).json()["rules"]
    ] == [
        "shared-deny",
        "globex-only",
    ]

    acme_new = {
        "name": "acme-new",
        "effect": "deny",
        "agents": ["ext-*"],
        "organizations": ["acme"],
    }
    changed = await client.put(POLICY, json={"rules": [acme_new]}, headers=keys["acme"])
    assert changed.status_code == 200, changed.text
    assert [r["name"] for r in changed.json()["rules"]] == ["shared-deny", "acme-new"]
    everything = (await client.get(POLICY, headers=keys["global"])).json()
    assert [r["name"] for r in everything["rules"]] == ["shared-deny", "globex-only", "acme-new"]

    for bad in ({"rules": [globex_rule]}, {"rules": [shared]}, {"mode": "deny-overrides"}):
        assert_problem(await client.put(POLICY, json=bad, headers=keys["acme"]), 403)
    stored = store.get_config("routing-policy")
    assert stored is not None
    assert [r["name"] for r in stored["rules"]] == ["shared-deny", "globex-only", "acme-new"]
