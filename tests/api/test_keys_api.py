"""``/api/admin/keys`` on both databases: an admin key manages its own organization's keys
(another organization's are forbidden to name and not found to revoke); the development
mode's local operator manages every organization's; bad bodies are problems."""

from __future__ import annotations

import httpx

from podium.settings import Settings
from podium.storage.store import SqlStore
from tests.api.conftest import KeyMaker
from tests.api.helpers import api, assert_problem, bearer


async def test_an_admin_creates_lists_and_revokes_its_organizations_keys(
    client: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    created = await client.post("/api/admin/keys", json={"role": "viewer"}, headers=acme)
    assert created.status_code == 201, created.text
    key = created.json()
    assert (key["organizationSlug"], key["role"], key["name"]) == ("acme", "viewer", "viewer@acme")
    assert key["key"].startswith(f"pod_{key['id']}_")
    viewer = bearer(key["key"])
    assert (await client.get("/api/orchestrations", headers=viewer)).status_code == 200

    listed = await client.get("/api/admin/keys", headers=acme)
    assert listed.status_code == 200
    items = listed.json()["items"]
    assert [(k["name"], k["revokedAt"]) for k in items] == [
        ("admin@acme", None),
        ("viewer@acme", None),
    ]
    assert key["key"] not in listed.text
    assert all("key" not in k for k in items)

    revoked = await client.post(f"/api/admin/keys/{key['id']}/revoke", headers=acme)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revokedAt"] is not None
    assert_problem(await client.get("/api/orchestrations", headers=viewer), 401)
    again = await client.post(f"/api/admin/keys/{key['id']}/revoke", headers=acme)
    assert again.json()["revokedAt"] == revoked.json()["revokedAt"]  # nothing changes


async def test_another_organizations_keys_are_forbidden_to_name_and_not_found_to_revoke(
    client: httpx.AsyncClient, acme: dict[str, str], make_key: KeyMaker, store: SqlStore
) -> None:
    theirs = bearer(make_key("globex", "admin"))
    body = assert_problem(
        await client.post(
            "/api/admin/keys", json={"organization": "globex", "role": "admin"}, headers=acme
        ),
        403,
    )
    assert body["detail"] == "an admin key of acme cannot create keys for globex"
    listing = await client.get("/api/admin/keys", params={"organization": "globex"}, headers=acme)
    assert_problem(listing, 403)
    own = (await client.get("/api/admin/keys", headers=theirs)).json()["items"]
    assert {k["organizationSlug"] for k in own} == {"globex"}

    acme_key = next(k for k in store.list_keys("acme"))
    revoke = await client.post(f"/api/admin/keys/{acme_key.id}/revoke", headers=theirs)
    assert assert_problem(revoke, 404)["detail"] == f"API key {acme_key.id} not found"
    assert store.list_keys("acme")[0].revoked_at is None


async def test_only_admins_manage_keys(client: httpx.AsyncClient, make_key: KeyMaker) -> None:
    operator = bearer(make_key("acme", "operator"))
    assert_problem(await client.get("/api/admin/keys", headers=operator), 403)
    denied = await client.post("/api/admin/keys", json={"role": "viewer"}, headers=operator)
    assert "needs the admin role" in assert_problem(denied, 403)["detail"]


async def test_bad_requests_are_problems_naming_the_field(
    client: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    for body, path in (
        ({"role": "owner"}, "body.role"),
        ({"role": "admin", "organization": "Not An Org"}, "body.organization"),
        ({"role": "admin", "secret": "mine"}, "body.secret"),
        ({}, "body.role"),
    ):
        problem = assert_problem(await client.post("/api/admin/keys", json=body, headers=acme), 422)
        assert path in [issue["path"] for issue in problem["issues"]], problem
    assert_problem(await client.post("/api/admin/keys/not-an-id!/revoke", headers=acme), 422)
    assert_problem(await client.get("/api/admin/keys?org=acme", headers=acme), 422)


async def test_without_keys_the_local_operator_manages_every_organization(
    store: SqlStore, settings: Settings
) -> None:
    async with api(store, settings, require_keys=False) as client:
        made = await client.post(
            "/api/admin/keys", json={"organization": "globex", "role": "admin"}
        )
        assert made.status_code == 201, made.text
        await client.post("/api/admin/keys", json={"organization": "acme", "role": "viewer"})
        everyone = (await client.get("/api/admin/keys")).json()["items"]
        assert [k["organizationSlug"] for k in everyone] == ["globex", "acme"]
        only = await client.get("/api/admin/keys", params={"organization": "acme"})
        assert [k["name"] for k in only.json()["items"]] == ["viewer@acme"]
        revoked = await client.post(f"/api/admin/keys/{made.json()['id']}/revoke")
        assert revoked.json()["revokedAt"] is not None
