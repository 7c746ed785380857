"""The approvals inbox over HTTP (spec sections 5 and 13; targets A1, A2), both databases."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx

from podium.storage.store import SqlStore
from tests.api.conftest import KeyMaker
from tests.api.helpers import assert_problem, bearer, launch, push
from tests.support import fast_settings, running_worker, wait_for

GATED = """
metadata: {name: gated, version: 1.0.0}
orchestration:
  steps:
    - {id: draft, agent: echo, input: {text: "{{ parameters.topic }}"},
       checkpoint_after: {question: "Publish {{ parameters.topic }}?"}}
    - {id: publish, agent: uppercase, depends_on: [draft], input: {text: done}}
  parameters:
    - {name: topic, type: string, default: tea}
"""
INBOX = "/api/orchestrations/approvals"


async def checkpointed(
    client: httpx.AsyncClient, store: SqlStore, db_url: str, headers: dict[str, str], n: int = 1
) -> list[dict[str, Any]]:
    """Launch ``n`` runs of GATED and run a worker until each waits at its checkpoint."""
    await push(client, headers, GATED)
    runs = [await launch(client, headers, "gated") for _ in range(n)]
    async with running_worker(store, fast_settings(db_url)):
        for run in runs:
            await wait_for(lambda r=run: store.get_run(r["id"]).status, lambda s: s == "checkpoint")
    return runs


async def test_runbook_section_2_inbox_lists_the_right_organization_and_the_run_resumes(
    client: httpx.AsyncClient,
    store: SqlStore,
    db_url: str,
    acme: dict[str, str],
    globex: dict[str, str],
) -> None:
    """Runbook section 2 as a scenario: a checkpoint_after step produces an approval that the
    inbox lists for its organization only; run detail and /status list it; the run resumes
    after the decision."""
    (run,) = await checkpointed(client, store, db_url, acme)
    listed = (await client.get(INBOX, headers=acme)).json()
    (item,) = listed["items"]
    assert item["runId"] == run["id"]
    assert item["question"] == "Publish tea?"
    assert item["stepId"] == "draft"
    assert item["status"] == "pending"
    assert item["stepOutput"]["output"] == {"text": "tea"}
    assert (await client.get(INBOX, headers=globex)).json() == {"items": [], "nextCursor": None}
    assert_problem(await client.get(f"{INBOX}/{item['approvalId']}", headers=globex), 404)
    detail = (await client.get(f"/api/orchestrations/{run['id']}", headers=acme)).json()
    assert [a["approvalId"] for a in detail["approvals"]] == [item["approvalId"]]
    status = (await client.get(f"/api/orchestrations/{run['id']}/status", headers=acme)).json()
    assert status["status"] == "checkpoint"
    assert [a["approvalId"] for a in status["pendingApprovals"]] == [item["approvalId"]]

    decided = await client.post(
        f"{INBOX}/{item['approvalId']}/decision",
        json={"decision": "continue", "note": "ship it"},
        headers=acme,
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["approval"]["decidedBy"] == "admin@acme"
    async with running_worker(store, fast_settings(db_url)):
        await wait_for(lambda: store.get_run(run["id"]).status, lambda s: s == "completed")
    again = await client.post(
        f"{INBOX}/{item['approvalId']}/decision", json={"decision": "abort"}, headers=acme
    )
    body = assert_problem(again, 409)
    assert "continue by admin@acme" in body["detail"]
    assert body["decidedBy"] == "admin@acme"
    assert (await client.get(INBOX, headers=acme)).json()["items"] == []
    shown = (await client.get(f"{INBOX}/{item['approvalId']}", headers=acme)).json()
    assert (shown["status"], shown["note"]) == ("approved", "ship it")


async def test_filters_and_cursor_pages(
    client: httpx.AsyncClient, store: SqlStore, db_url: str, acme: dict[str, str]
) -> None:
    runs = await checkpointed(client, store, db_url, acme, n=3)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get(INBOX, params=params, headers=acme)).json()
        seen += [a["approvalId"] for a in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 3
    one = (await client.get(INBOX, params={"runId": runs[0]["id"]}, headers=acme)).json()
    assert [a["runId"] for a in one["items"]] == [runs[0]["id"]]
    assert (
        len((await client.get(INBOX, params={"definition": "gated"}, headers=acme)).json()["items"])
        == 3
    )
    assert (await client.get(INBOX, params={"kind": "input"}, headers=acme)).json()["items"] == []
    assert (await client.get(INBOX, params={"status": "expired"}, headers=acme)).json()[
        "items"
    ] == []
    assert_problem(await client.get(INBOX, params={"status": "nope"}, headers=acme), 422)


async def test_bad_modifications_are_422_and_change_nothing(
    client: httpx.AsyncClient, store: SqlStore, db_url: str, acme: dict[str, str]
) -> None:
    (run,) = await checkpointed(client, store, db_url, acme)
    (item,) = (await client.get(INBOX, headers=acme)).json()["items"]
    before = store.events_after(run["id"])
    url = f"{INBOX}/{item['approvalId']}/decision"
    bad = await client.post(
        url,
        json={"decision": "retry", "modifications": {"agentOverrides": {"ghost": "echo"}}},
        headers=acme,
    )
    body = assert_problem(bad, 422)
    assert [i["path"] for i in body["issues"]] == ["modifications.agentOverrides.ghost"]
    respond = await client.post(url, json={"decision": "respond"}, headers=acme)
    assert_problem(respond, 422)
    assert store.events_after(run["id"]) == before
    assert store.get_approval(item["approvalId"]).status == "pending"


async def test_idempotency_key_replays_the_first_answer(
    client: httpx.AsyncClient, store: SqlStore, db_url: str, acme: dict[str, str]
) -> None:
    await checkpointed(client, store, db_url, acme)
    (item,) = (await client.get(INBOX, headers=acme)).json()["items"]
    url = f"{INBOX}/{item['approvalId']}/decision"
    key = {"Idempotency-Key": "decide-once"}
    first = await client.post(url, json={"decision": "continue"}, headers=acme | key)
    second = await client.post(url, json={"decision": "continue"}, headers=acme | key)
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    other = await client.post(url, json={"decision": "abort"}, headers=acme | key)
    assert_problem(other, 422)


async def test_fifty_concurrent_decisions_over_http_one_200_and_49_409(
    client: httpx.AsyncClient,
    store: SqlStore,
    db_url: str,
    acme: dict[str, str],
    make_key: KeyMaker,
) -> None:
    """A2: 50 concurrent decisions on one approval: one 200, 49 409, the run resumes once."""
    (run,) = await checkpointed(client, store, db_url, acme)
    headers = bearer(make_key("acme", "operator"))
    (item,) = (await client.get(INBOX, headers=headers)).json()["items"]
    url = f"{INBOX}/{item['approvalId']}/decision"

    async def decide(i: int) -> int:
        response = await client.post(
            url, json={"decision": "continue", "note": f"#{i}"}, headers=headers
        )
        return response.status_code

    codes = Counter(await asyncio.gather(*(decide(i) for i in range(50))))
    assert codes == Counter({200: 1, 409: 49})
    async with running_worker(store, fast_settings(db_url)):
        await wait_for(lambda: store.get_run(run["id"]).status, lambda s: s == "completed")
    types = Counter(e.type for e in store.events_after(run["id"]))
    assert types["orchestration.checkpoint.resolved"] == 1
    publish = [e for e in store.events_after(run["id"]) if e.step_id == "publish"]
    assert [e.type for e in publish].count("orchestration.step.running") == 1


async def test_viewers_cannot_decide(
    client: httpx.AsyncClient,
    store: SqlStore,
    db_url: str,
    acme: dict[str, str],
    make_key: KeyMaker,
) -> None:
    await checkpointed(client, store, db_url, acme)
    viewer = bearer(make_key("acme", "viewer"))
    (item,) = (await client.get(INBOX, headers=viewer)).json()["items"]
    refused = await client.post(
        f"{INBOX}/{item['approvalId']}/decision", json={"decision": "continue"}, headers=viewer
    )
    assert_problem(refused, 403)
