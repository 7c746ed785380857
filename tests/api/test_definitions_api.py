"""Definitions over HTTP: push (JSON or YAML), list, show, activate, deactivate, validate."""

from __future__ import annotations

import json
from typing import Any

import httpx
import yaml

from tests.api.conftest import KeyMaker
from tests.api.helpers import ECHO, YAML, assert_problem, bearer

DOCUMENT = yaml.safe_load(ECHO)
CYCLE = """
metadata: {name: loop, version: 1.0.0}
orchestration:
  steps:
    - {id: a, agent: echo, depends_on: [b]}
    - {id: b, agent: echo, depends_on: [a]}
"""


def version(doc: dict[str, Any], number: str) -> dict[str, Any]:
    return {**doc, "metadata": {**doc["metadata"], "version": number}}


async def test_push_json_then_again_is_created_then_unchanged(
    client: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    first = await client.post("/api/definitions", json=DOCUMENT, headers=acme)
    assert first.status_code == 201, first.text
    view = first.json()
    assert (view["name"], view["version"], view["status"]) == ("greet", "1.0.0", "active")
    assert view["document"]["metadata"]["name"] == "greet"
    again = await client.post("/api/definitions", json=DOCUMENT, headers=acme)
    assert again.status_code == 200
    assert again.json()["createdAt"] == view["createdAt"]


async def test_push_yaml_with_either_media_type_and_as_draft(
    client: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    created = await client.post("/api/definitions", content=ECHO, headers=acme | YAML)
    assert created.status_code == 201
    draft = await client.post(
        "/api/definitions",
        params={"activate": "false"},
        content=ECHO.replace("1.0.0", "1.1.0"),
        headers=acme | {"content-type": "text/yaml; charset=utf-8"},
    )
    assert (draft.status_code, draft.json()["status"]) == (201, "draft")
    latest = await client.get("/api/definitions/greet", headers=acme)
    assert latest.json()["version"] == "1.0.0"  # drafts are not launchable


async def test_versions_can_be_listed_shown_activated_and_deactivated(
    client: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    for number in ("1.0.0", "1.2.0"):
        await client.post("/api/definitions", json=version(DOCUMENT, number), headers=acme)
    listed = (await client.get("/api/definitions", headers=acme)).json()
    assert [(d["name"], d["latestActive"]) for d in listed] == [("greet", "1.2.0")]
    assert [v["version"] for v in listed[0]["versions"]] == ["1.2.0", "1.0.0"]
    assert listed[0]["versions"][0]["document"] is None  # lists stay small

    shown = await client.get("/api/definitions/greet/versions/1.0.0", headers=acme)
    assert shown.json()["document"]["metadata"]["version"] == "1.0.0"
    off = await client.post("/api/definitions/greet/versions/1.2.0/deactivate", headers=acme)
    assert off.json()["status"] == "inactive"
    assert (await client.get("/api/definitions/greet", headers=acme)).json()["version"] == "1.0.0"
    drafts = await client.get("/api/definitions", params={"status": "inactive"}, headers=acme)
    assert [v["version"] for v in drafts.json()[0]["versions"]] == ["1.2.0"]
    on = await client.post("/api/definitions/greet/versions/1.2.0/activate", headers=acme)
    assert on.json()["status"] == "active"
    assert (await client.get("/api/definitions/greet", headers=acme)).json()["version"] == "1.2.0"


async def test_definition_errors_are_problems(
    client: httpx.AsyncClient, acme: dict[str, str], make_key: KeyMaker
) -> None:
    cycle = await client.post("/api/definitions", content=CYCLE, headers=acme | YAML)
    body = assert_problem(cycle, 422, "definition_invalid")
    assert any("cycle" in i["message"] for i in body["issues"])
    await client.post("/api/definitions", json=DOCUMENT, headers=acme)
    changed = json.loads(json.dumps(DOCUMENT))
    changed["orchestration"]["steps"][0]["input"]["text"] = "changed"
    assert_problem(await client.post("/api/definitions", json=changed, headers=acme), 409)
    assert_problem(await client.get("/api/definitions/nothing", headers=acme), 404)
    assert_problem(await client.get("/api/definitions/greet/versions/9.9.9", headers=acme), 404)
    assert_problem(
        await client.post("/api/definitions/greet/versions/9.9.9/activate", headers=acme), 404
    )
    bad_name = await client.get("/api/definitions/Not_A_Name", headers=acme)
    assert [i["path"] for i in assert_problem(bad_name, 422)["issues"]] == ["path.name"]
    form = await client.post("/api/definitions", data={"a": "b"}, headers=acme)
    assert_problem(form, 415, "unsupported_media_type")
    listed = await client.post("/api/definitions", json=[DOCUMENT], headers=acme)
    assert (
        "JSON object" in assert_problem(listed, 422, "definition_invalid")["issues"][0]["message"]
    )
    viewer = bearer(make_key("acme", "viewer"))
    assert_problem(await client.post("/api/definitions", json=DOCUMENT, headers=viewer), 403)
    operator = bearer(make_key("acme", "operator"))
    deactivate = "/api/definitions/greet/versions/1.0.0/deactivate"
    assert_problem(await client.post(deactivate, headers=operator), 403)


async def test_validate_answers_200_with_every_issue(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    viewer = bearer(make_key("acme", "viewer"))  # validating changes nothing: any role may
    good = await client.post("/api/definitions/validate", json=DOCUMENT, headers=viewer)
    assert good.status_code == 200
    assert good.json() == {
        "valid": True,
        "name": "greet",
        "version": "1.0.0",
        "steps": 2,
        "issues": [],
    }
    bad = await client.post("/api/definitions/validate", content=CYCLE, headers=viewer | YAML)
    assert bad.status_code == 200
    assert bad.json()["valid"] is False
    assert any("cycle" in i["message"] for i in bad.json()["issues"])
    not_an_object = await client.post("/api/definitions/validate", json=[1], headers=viewer)
    assert (not_an_object.status_code, not_an_object.json()["valid"]) == (200, False)
    assert (await client.get("/api/definitions", headers=viewer)).json() == []


async def test_global_definitions_are_visible_to_every_organization(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    shared = bearer(make_key("global", "admin"))
    await client.post("/api/definitions", json=DOCUMENT, headers=shared)
    acme = bearer(make_key("acme", "operator"))
    shown = await client.get("/api/definitions/greet", headers=acme)
    assert shown.json()["organizationSlug"] == "global"
    launched = await client.post("/api/orchestrations", json={"definition": "greet"}, headers=acme)
    assert launched.json()["organizationSlug"] == "acme"
