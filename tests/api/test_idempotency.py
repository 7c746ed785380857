"""I1: ``POST /api/orchestrations`` with an ``Idempotency-Key``, sequential or concurrent: one
run, the same response replayed; the same key with another body: 422; keys per organization."""

from __future__ import annotations

import asyncio

import httpx

from podium.storage.store import SqlStore
from tests.api.helpers import ECHO, assert_problem, push


def keyed(headers: dict[str, str], key: str) -> dict[str, str]:
    return headers | {"Idempotency-Key": key}


async def test_a_repeated_request_replays_the_first_response(
    client: httpx.AsyncClient, acme: dict[str, str], store: SqlStore
) -> None:
    """I1 (sequential)."""
    await push(client, acme, ECHO)
    body = {"definition": "greet", "parameters": {"who": "once"}}
    first = await client.post("/api/orchestrations", json=body, headers=keyed(acme, "k-1"))
    again = await client.post("/api/orchestrations", json=body, headers=keyed(acme, "k-1"))
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]
    assert "idempotent-replayed" not in first.headers
    assert len(store.list_runs(organization="acme")) == 1


async def test_the_same_key_with_another_body_is_refused(
    client: httpx.AsyncClient, acme: dict[str, str], store: SqlStore
) -> None:
    """I1 (different body)."""
    await push(client, acme, ECHO)
    headers = keyed(acme, "k-2")
    first = await client.post("/api/orchestrations", json={"definition": "greet"}, headers=headers)
    assert first.status_code == 201
    other = await client.post(
        "/api/orchestrations",
        json={"definition": "greet", "parameters": {"who": "else"}},
        headers=headers,
    )
    body = assert_problem(other, 422)
    assert body["issues"][0]["path"] == "Idempotency-Key"
    assert len(store.list_runs(organization="acme")) == 1


async def test_ten_concurrent_identical_requests_launch_one_run(
    client: httpx.AsyncClient, acme: dict[str, str], store: SqlStore
) -> None:
    """I1 (concurrent): ten identical POSTs at once; one run, every body equal."""
    await push(client, acme, ECHO)
    body = {"definition": "greet", "parameters": {"who": "crowd"}}
    responses = await asyncio.gather(
        *(
            client.post("/api/orchestrations", json=body, headers=keyed(acme, "k-crowd"))
            for _ in range(10)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 9 + [201], [r.text for r in responses]
    assert len({r.text for r in responses}) == 1
    runs = store.list_runs(organization="acme")
    assert [r.id for r in runs] == [responses[0].json()["id"]]


async def test_keys_belong_to_one_organization(
    client: httpx.AsyncClient, acme: dict[str, str], globex: dict[str, str], store: SqlStore
) -> None:
    """I1 (scope): the same key in two organizations launches two runs."""
    for headers in (acme, globex):
        await push(client, headers, ECHO)
    body = {"definition": "greet"}
    ours = await client.post("/api/orchestrations", json=body, headers=keyed(acme, "shared"))
    theirs = await client.post("/api/orchestrations", json=body, headers=keyed(globex, "shared"))
    assert (ours.status_code, theirs.status_code) == (201, 201)
    assert ours.json()["id"] != theirs.json()["id"]
    assert theirs.json()["organizationSlug"] == "globex"
    assert len(store.list_runs(organization="acme")) == 1


async def test_idempotency_keys_are_validated(
    client: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    await push(client, acme, ECHO)
    response = await client.post(
        "/api/orchestrations", json={"definition": "greet"}, headers=keyed(acme, "x" * 256)
    )
    assert [i["path"] for i in assert_problem(response, 422)["issues"]] == [
        "header.Idempotency-Key"
    ]
