"""Runs over HTTP: launch, list, detail, status, step records, events, approvals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from tests.api.conftest import KeyMaker
from tests.api.helpers import ECHO, Finisher, assert_problem, bearer, launch, push


async def test_a_launched_run_can_be_followed_to_its_end(
    client: httpx.AsyncClient, acme: dict[str, str], finish: Finisher
) -> None:
    await push(client, acme, ECHO)
    response = await client.post(
        "/api/orchestrations",
        json={"definition": "greet", "parameters": {"who": "api"}},
        headers=acme,
    )
    assert response.status_code == 201
    run = response.json()
    assert response.headers["location"] == f"/api/orchestrations/{run['id']}"
    assert (run["definition"], run["version"], run["organizationSlug"]) == (
        "greet",
        "1.0.0",
        "acme",
    )
    assert "idempotent-replayed" not in response.headers
    assert await finish(run["id"]) == "completed"

    detail = (await client.get(f"/api/orchestrations/{run['id']}", headers=acme)).json()
    assert detail["run"]["status"] == "completed"
    assert detail["run"]["parameters"] == {"who": "api"}
    assert detail["run"]["metadata"]["launchedBy"] == "admin@acme"
    assert [s["stepId"] for s in detail["steps"]] == ["hello", "shout"]
    assert (detail["approvals"], detail["parent"], detail["children"]) == ([], None, [])

    status = (await client.get(f"/api/orchestrations/{run['id']}/status", headers=acme)).json()
    assert status["status"] == "completed"
    assert status["steps"] == {"hello": "completed", "shout": "completed"}
    assert status["progress"]["percent"] == 100.0

    hello = detail["steps"][0]
    step = await client.get(
        f"/api/orchestrations/{run['id']}/steps/{hello['stepRecordId']}", headers=acme
    )
    assert step.status_code == 200
    assert step.json()["input"] == {"text": "hello api"}
    assert [a["outcome"] for a in step.json()["attempts"]] == ["completed"]

    events = (await client.get(f"/api/orchestrations/{run['id']}/events", headers=acme)).json()
    sequences = [e["sequence"] for e in events]
    assert sequences == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "orchestration.run.completed"
    later = await client.get(
        f"/api/orchestrations/{run['id']}/events",
        params={"after": sequences[-3], "limit": 1},
        headers=acme,
    )
    assert [e["sequence"] for e in later.json()] == [sequences[-2]]

    short = await client.get(f"/api/orchestrations/{run['id'][:8]}/status", headers=acme)
    assert short.json()["runId"] == run["id"]  # a unique prefix names the run


async def test_runs_are_listed_newest_first_with_filters_and_cursor(
    client: httpx.AsyncClient, acme: dict[str, str], finish: Finisher
) -> None:
    await push(client, acme, ECHO)
    ids = [(await launch(client, acme, "greet"))["id"] for _ in range(3)]
    assert await finish(ids[0]) == "completed"
    await finish(ids[2])

    async def listed(**params: object) -> dict[str, object]:
        response = await client.get("/api/orchestrations", params=params, headers=acme)
        assert response.status_code == 200, response.text
        page: dict[str, object] = response.json()
        return page

    def run_ids(page: dict[str, object]) -> list[str]:
        items = page["items"]
        assert isinstance(items, list)
        return [item["id"] for item in items]

    assert run_ids(await listed()) == ids[::-1]
    first = await listed(limit=2)
    assert run_ids(first) == ids[:0:-1]
    assert run_ids(await listed(limit=2, cursor=first["nextCursor"])) == ids[:1]
    assert run_ids(await listed(lifecycle="completed")) == ids[::-1]
    assert run_ids(await listed(lifecycle="active")) == []
    assert run_ids(await listed(status=["completed", "failed"])) == ids[::-1]
    assert run_ids(await listed(status="running")) == []
    assert run_ids(await listed(definition="other")) == []
    assert run_ids(await listed(search=ids[1])) == [ids[1]]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    naive_tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(tzinfo=None).isoformat()
    assert run_ids(await listed(createdAfter=naive_tomorrow)) == []  # read as UTC
    assert run_ids(await listed(createdBefore=tomorrow)) == ids[::-1]
    assert run_ids(await listed(createdAfter=tomorrow)) == []
    assert run_ids(await listed(parentRunId=ids[0])) == []


async def test_list_parameters_are_validated_with_their_names(
    client: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    response = await client.get(
        "/api/orchestrations",
        params={"limit": 0, "lifecycle": "sometimes", "status": "bogus"},
        headers=acme,
    )
    body = assert_problem(response, 422, "validation_error")
    paths = {issue["path"] for issue in body["issues"]}
    assert {"query.limit", "query.lifecycle", "query.status[0]"} <= paths
    for value in ("yesterday", "0.0"):
        dates = await client.get(
            "/api/orchestrations", params={"createdAfter": value}, headers=acme
        )
        assert [i["path"] for i in assert_problem(dates, 422)["issues"]] == ["query.createdAfter"]
    unknown = await client.get(
        "/api/orchestrations",
        params={"lifecyle": "active", "limit": [1, 2], "search": "a\x00"},
        headers=acme,
    )
    issues = {i["path"]: i["message"] for i in assert_problem(unknown, 422)["issues"]}
    assert issues == {
        "query.lifecyle": "is not a parameter of this route",
        "query.limit": "takes one value, not several",
        "query.search": "must not contain NUL characters",
    }
    not_an_id = await client.get("/api/orchestrations/not-an-id", headers=acme)
    assert [i["path"] for i in assert_problem(not_an_id, 422)["issues"]] == ["path.runId"]


async def test_launch_errors_are_problems(
    client: httpx.AsyncClient, acme: dict[str, str], make_key: KeyMaker
) -> None:
    await push(client, acme, ECHO)
    missing = await client.post("/api/orchestrations", json={"definition": "nope"}, headers=acme)
    assert_problem(missing, 404, "not_found")
    typed = await client.post(
        "/api/orchestrations", json={"definition": "greet", "parameters": "x"}, headers=acme
    )
    body = assert_problem(typed, 422, "validation_error")
    assert [i["path"] for i in body["issues"]] == ["body.parameters"]
    unknown = await client.post(
        "/api/orchestrations",
        json={"definition": "greet", "parameters": {"whom": 1}},
        headers=acme,
    )
    assert assert_problem(unknown, 422, "parameters_invalid")["issues"]
    extra = await client.post(
        "/api/orchestrations", json={"definition": "greet", "versoin": "1"}, headers=acme
    )
    assert [i["path"] for i in assert_problem(extra, 422)["issues"]] == ["body.versoin"]
    not_json = await client.post(
        "/api/orchestrations",
        content=b"{",
        headers=acme | {"content-type": "application/json"},
    )
    assert [i["path"] for i in assert_problem(not_json, 422)["issues"]] == ["body"]
    nul = await client.post(
        "/api/orchestrations",
        json={"definition": "greet", "parameters": {"who": "a\u0000b"}},
        headers=acme,
    )
    assert "parameters.who" in assert_problem(nul, 422)["issues"][0]["message"]
    viewer = bearer(make_key("acme", "viewer"))
    refused = await client.post("/api/orchestrations", json={"definition": "greet"}, headers=viewer)
    assert "viewer" in assert_problem(refused, 403, "forbidden")["detail"]


async def test_unknown_runs_steps_and_routes_are_404_problems(
    client: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    await push(client, acme, ECHO)
    run = await launch(client, acme, "greet")
    unknown = "00000000-0000-0000-0000-000000000000"
    for path in (
        f"/api/orchestrations/{unknown}",
        f"/api/orchestrations/{unknown}/status",
        f"/api/orchestrations/{unknown}/events",
        f"/api/orchestrations/{run['id']}/steps/{unknown}",
        "/api/nothing-here",
    ):
        body = assert_problem(await client.get(path, headers=acme), 404, "not_found")
        assert body["instance"] == path
    wrong_method = await client.delete("/api/orchestrations", headers=acme)
    assert_problem(wrong_method, 405, "method_not_allowed")
    assert "GET" in wrong_method.headers["allow"]


async def test_approvals_inbox_is_empty_and_needs_a_key(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    viewer = bearer(make_key("acme", "viewer"))
    response = await client.get("/api/orchestrations/approvals", headers=viewer)
    assert (response.status_code, response.json()) == (200, {"items": [], "nextCursor": None})
    assert_problem(await client.get("/api/orchestrations/approvals"), 401)
