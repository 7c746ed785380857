"""K1: missing or bad keys get 401; keys are stored as hashes and never logged; a revoked key
stops at once. Development mode without keys only on loopback."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from podium.api.auth import is_loopback, keys_required
from podium.settings import Settings
from podium.storage.store import SqlStore
from tests.api.conftest import KeyMaker
from tests.api.helpers import ECHO, YAML, api, assert_problem, bearer, push

PROTECTED = "/api/orchestrations"
# what these tests are about: an address other machines reach
ALL_INTERFACES = "0.0.0.0"  # noqa: S104


async def test_requests_without_a_valid_key_get_401(client: httpx.AsyncClient) -> None:
    """K1: missing, malformed, unknown."""
    for authorization in (
        None,
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer pod_nothing_here",
        "Bearer not-even-a-podium-key",
        "Bearer " + "x" * 2000,
    ):
        headers = {"Authorization": authorization} if authorization else {}
        response = await client.get(PROTECTED, headers=headers)
        assert_problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer"), authorization


async def test_a_key_with_a_wrong_secret_gets_401(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    key = make_key("acme")
    assert (await client.get(PROTECTED, headers=bearer(key))).status_code == 200
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    assert_problem(await client.get(PROTECTED, headers=bearer(forged)), 401)


async def test_a_revoked_key_stops_working_with_the_next_request(
    client: httpx.AsyncClient, make_key: KeyMaker, store: SqlStore
) -> None:
    """K1: revocation takes effect at once (no cache)."""
    key = make_key("acme")
    assert (await client.get(PROTECTED, headers=bearer(key))).status_code == 200
    key_id = key.split("_")[1]
    store.revoke_key(key_id)
    assert_problem(await client.get(PROTECTED, headers=bearer(key)), 401)


async def test_keys_are_stored_only_as_hashes(
    client: httpx.AsyncClient, make_key: KeyMaker, store: SqlStore, db_url: str
) -> None:
    """K1: the key text is nowhere in the database (rows, and the SQLite files)."""
    key = make_key("acme", "admin")
    secret = key.split("_", 2)[2]
    await push(client, bearer(key), ECHO)  # use it, so that any "last used" write happens
    with store.db.engine.connect() as conn:
        for table in _tables(conn):
            for row in conn.execute(sa.select(table)):
                text = repr(tuple(row))
                assert secret not in text, table.name
                assert key not in text, table.name
    if db_url.startswith("sqlite:///"):
        database = Path(db_url.removeprefix("sqlite:///"))
        for path in database.parent.glob(database.name + "*"):
            content = path.read_bytes()
            assert secret.encode() not in content, path
            assert key.encode() not in content, path


def _tables(conn: sa.Connection) -> list[sa.Table]:
    metadata = sa.MetaData()
    metadata.reflect(conn)
    return list(metadata.tables.values())


async def test_keys_are_never_logged(
    client: httpx.AsyncClient, make_key: KeyMaker, caplog: pytest.LogCaptureFixture
) -> None:
    """K1: neither a good nor a bad key appears in any log record."""
    key = make_key("acme", "admin")
    bad = key[:-3] + "zzz"
    with caplog.at_level(logging.DEBUG):
        await client.get(PROTECTED, headers=bearer(key))
        await client.get(PROTECTED, headers=bearer(bad))
        await client.post("/api/definitions", content="{", headers=bearer(key))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert key not in logged
    assert bad not in logged
    assert key.split("_", 2)[2][:12] not in logged


async def test_probes_and_docs_need_no_key(client: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/readyz", "/openapi.json", "/docs"):
        assert (await client.get(path)).status_code == 200, path


async def test_development_mode_acts_as_the_local_operator_on_loopback(
    store: SqlStore, settings: Settings, make_key: KeyMaker
) -> None:
    async with api(store, settings, require_keys=None, organization="dev") as client:
        created = await client.post("/api/definitions", content=ECHO, headers=YAML)
        assert created.json()["organizationSlug"] == "dev"
        # a key that is sent is still checked, and then it decides the organization
        assert_problem(await client.get(PROTECTED, headers=bearer("pod_bad_key")), 401)
        theirs = await client.get("/api/definitions", headers=bearer(make_key("acme")))
        assert theirs.json() == []


async def test_keys_are_required_on_other_interfaces_whatever_the_setting(
    store: SqlStore, settings: Settings
) -> None:
    for host in (ALL_INTERFACES, "10.1.2.3", "example.org"):
        async with api(store, settings, require_keys=False, host=host) as client:
            assert_problem(await client.get(PROTECTED), 401)


def test_loopback_addresses() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in (ALL_INTERFACES, "::", "192.168.1.2", "podium.internal"))
    assert not keys_required(Settings(host="127.0.0.1"))
    assert keys_required(Settings(host="127.0.0.1", require_keys=True))
    assert keys_required(Settings(host=ALL_INTERFACES, require_keys=False))
