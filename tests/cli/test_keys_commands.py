"""``podium keys`` on the local database and over ``--url`` (a real server on loopback), on
SQLite and PostgreSQL: create, list and revoke in both places; on a server an admin key
manages its own organization's keys only; bad input is one ``error:`` line and a non-zero
exit."""

from __future__ import annotations

import re

from tests.cli.conftest import Where


def test_create_list_and_revoke(where: Where) -> None:
    code, out, err = where.run(
        "keys", "create", "--org", "acme", "--role", "operator", "--name", "ci"
    )
    assert code == 0, err
    key = out.strip()
    assert re.fullmatch(r"pod_[0-9a-f]+_\S+", key)
    assert "(ci, operator of acme); it is shown only now" in err
    assert where.store.authenticate(key) is not None  # a working key, in the database

    created = where.json("keys", "create", "--org", "acme", "--role", "viewer")
    assert (created["name"], created["role"], created["organizationSlug"]) == (
        "viewer@acme",
        "viewer",
        "acme",
    )
    assert created["key"].startswith(f"pod_{created['id']}_")

    listed = where.json("keys", "list", "--org", "acme")
    assert [k["name"] for k in listed][-2:] == ["ci", "viewer@acme"]
    assert all("key" not in k for k in listed)
    code, table, _ = where.run("keys", "list")
    assert code == 0
    assert "viewer@acme" in table
    assert key.split("_", 2)[2] not in table  # never a secret

    revoked = where.json("keys", "revoke", created["id"])
    assert revoked["revokedAt"] is not None
    assert where.store.authenticate(created["key"]) is None
    code, out, _ = where.run("keys", "revoke", created["id"])  # again: nothing changes
    assert (code, out) == (0, f"revoked key {created['id']} (viewer@acme, viewer of acme)\n")
    [shown] = [k for k in where.json("keys", "list") if k["id"] == created["id"]]
    assert shown["revokedAt"] == revoked["revokedAt"]
    assert "revoked" in where.run("keys", "list", "--org", "acme")[1]


def test_bad_input_is_one_line_and_a_non_zero_exit(where: Where) -> None:
    code, line = where.error("keys", "create", "--org", "acme", "--role", "owner")
    assert code == 2
    assert "'owner' is not a role" in line
    code, line = where.error("keys", "create", "--org", "Not An Org", "--role", "admin")
    assert code == 2
    assert "not an organization slug" in line
    assert where.error("keys", "list", "--org", "ACME")[0] == 2
    assert where.error("keys", "revoke", "nope") == (1, "error: API key nope not found")
    code, line = where.error("keys", "revoke", "no/pe")
    assert code == 2
    assert "not a key id" in line
    assert where.error("keys", "create", "--role", "admin")[0] == 2  # --org is required
    assert [k.name for k in where.store.list_keys()] == (["admin@acme"] if where.remote else [])


def test_the_organizations_a_caller_manages(where: Where) -> None:
    """Locally every organization's keys; on a server an admin key's own organization's:
    another one is forbidden to name, and its keys are not found."""
    theirs, _ = where.store.create_key(organization="globex", role="viewer", name="viewer@globex")
    orgs = {k["organizationSlug"] for k in where.json("keys", "list")}
    if not where.remote:
        assert orgs == {"globex"}
        made = where.json("keys", "create", "--org", "initech", "--role", "admin")
        assert made["organizationSlug"] == "initech"
        assert where.json("keys", "revoke", theirs.id)["revokedAt"] is not None
        return
    assert orgs == {"acme"}
    code, line = where.error("keys", "create", "--org", "globex", "--role", "admin")
    assert (code, line) == (1, "error: an admin key of acme cannot create keys for globex")
    code, line = where.error("keys", "list", "--org", "globex")
    assert (code, line) == (1, "error: an admin key of acme cannot list the keys of globex")
    assert where.error("keys", "revoke", theirs.id) == (1, f"error: API key {theirs.id} not found")
    assert where.store.list_keys("globex")[0].revoked_at is None
    _, operator = where.store.create_key(organization="acme", role="operator", name="op")
    where.api_key = operator
    code, line = where.error("keys", "list")
    assert code == 1
    assert "needs the admin role" in line
