"""L3: nesting depth and size are checked at every entry, with a 422 naming the path, and a
run is always readable back whatever it holds."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from podium.settings import Settings
from podium.storage.store import SqlStore
from tests.api.conftest import KeyMaker
from tests.api.helpers import (
    ECHO,
    YAML,
    Finisher,
    api,
    assert_problem,
    bearer,
    failed_run,
    launch,
    push,
)


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


def deep_json(depth: int) -> str:
    """A JSON text nested ``depth`` levels, built without recursion."""
    return '{"a":' * depth + '"leaf"' + "}" * depth


async def test_a_skip_with_a_500_level_replacement_output_is_refused_and_the_run_stays_readable(
    client: httpx.AsyncClient, acme: dict[str, str], finish: Finisher
) -> None:
    """L3: the old code answered 200, then ``GET /api/orchestrations/RUN`` answered 500."""
    run = await failed_run(client, acme, finish)
    body = '{"replacementOutput":' + deep_json(500) + "}"
    response = await client.post(
        f"/api/orchestrations/{run['id']}/actions/skip",
        content=body,
        headers=acme | {"content-type": "application/json"},
    )
    problem = assert_problem(response, 422)
    assert any(i["path"].startswith("body.replacementOutput") for i in problem["issues"]), problem
    assert "deeper than 64" in json.dumps(problem)
    detail = await client.get(f"/api/orchestrations/{run['id']}", headers=acme)
    assert detail.status_code == 200, detail.text
    assert detail.json()["run"]["status"] == "failed"


async def test_a_skip_at_the_depth_limit_is_accepted(
    client: httpx.AsyncClient, acme: dict[str, str], finish: Finisher
) -> None:
    """L3: 64 levels are allowed (the limit counts containers)."""
    run = await failed_run(client, acme, finish)
    response = await client.post(
        f"/api/orchestrations/{run['id']}/actions/skip",
        json={"replacementOutput": nested(63)},
        headers=acme,
    )
    assert response.status_code == 200, response.text
    detail = await client.get(f"/api/orchestrations/{run['id']}", headers=acme)
    assert detail.status_code == 200, detail.text


async def test_retry_modifications_input_is_checked(
    client: httpx.AsyncClient, acme: dict[str, str], finish: Finisher
) -> None:
    """L3: ``modifications.input`` of a retry."""
    run = await failed_run(client, acme, finish)
    response = await client.post(
        f"/api/orchestrations/{run['id']}/actions/retry",
        json={"modifications": {"input": {"text": nested(80)}}},
        headers=acme,
    )
    problem = assert_problem(response, 422)
    paths = [i["path"] for i in problem["issues"]]
    assert any(p.startswith("body.modifications.input.text") for p in paths), paths


async def test_launch_parameters_too_deep_get_422_naming_the_path(
    client: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    """L3: launch parameters, and a RecursionError-depth body never becomes a 500."""
    await push(client, acme, ECHO)
    for depth in (70, 5000):
        body = '{"definition":"greet","parameters":{"who":' + deep_json(depth) + "}}"
        response = await client.post(
            "/api/orchestrations",
            content=body,
            headers=acme | {"content-type": "application/json"},
        )
        problem = assert_problem(response, 422)
        assert any(i["path"].startswith("body") for i in problem["issues"]), problem
    ok = await launch(client, acme, "greet", parameters={"who": "x"})
    assert ok["status"] in ("planning", "running")


async def test_the_depth_limit_is_configurable(
    store: SqlStore, settings: Settings, make_key: KeyMaker
) -> None:
    """L3: ``PODIUM_MAX_NESTING_DEPTH`` lowers the limit for every entry."""
    headers = bearer(make_key("acme", "admin"))
    async with api(store, settings, max_nesting_depth=8) as client:
        await push(client, headers, ECHO.replace("greet", "greet2"))
        response = await client.post(
            "/api/orchestrations",
            json={"definition": "greet2", "parameters": {"who": nested(9)}},
            headers=headers,
        )
        problem = assert_problem(response, 422)
        assert "body.parameters.who" in problem["issues"][0]["path"], problem


def alias_bomb(levels: int, width: int = 9) -> str:
    """A YAML document whose anchors expand to ``width ** levels`` leaves."""
    lines = [f"a0: &a0 ['{'x' * 1000}']"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    lines += [
        "metadata: {name: bomb, version: 1.0.0}",
        "orchestration:",
        "  steps:",
        f"    - {{id: s, agent: echo, input: {{v: *a{levels}}}}}",
    ]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("route", ["/api/definitions", "/api/definitions/validate"])
async def test_a_yaml_alias_bomb_is_measured_after_expansion(
    client: httpx.AsyncClient, acme: dict[str, str], route: str
) -> None:
    """L3: a small YAML text that expands past the size limit is refused with 422."""
    doc = alias_bomb(4, width=11)
    assert len(doc) < 2000
    response = await client.post(route, content=doc, headers=acme | YAML)
    if route.endswith("/validate"):  # answers 200 with the issues
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["valid"] is False
    else:
        body = assert_problem(response, 422)
    assert "expands to more than" in json.dumps(body), body


async def test_a_deep_definition_document_is_refused_by_a_push(
    client: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    """L3: a push refuses what a launch would refuse (JSON and YAML)."""
    doc = {
        "metadata": {"name": "deep", "version": "1.0.0"},
        "orchestration": {"steps": [{"id": "s", "agent": "echo", "input": nested(100)}]},
    }
    response = await client.post("/api/definitions", json=doc, headers=acme)
    problem = assert_problem(response, 422)
    paths = [i["path"] for i in problem["issues"]]
    assert any("orchestration.steps[0].input" in p for p in paths), paths
    yaml_doc = (
        "metadata: {name: deep, version: 1.0.0}\norchestration:\n  steps:\n"
        "    - {id: s, agent: echo, input: " + "[" * 3000 + "]" * 3000 + "}\n"
    )
    response = await client.post("/api/definitions", content=yaml_doc, headers=acme | YAML)
    assert_problem(response, 422)


async def test_a_run_holding_a_500_level_value_is_still_readable(
    client: httpx.AsyncClient, store: SqlStore, acme: dict[str, str], finish: Finisher
) -> None:
    """L3: reading a run back never fails, whatever it holds (here a value stored by an
    older version, bypassing the API's limits): detail, status, step and events answer 200."""
    run = await failed_run(client, acme, finish)
    store.skip(run["id"], actor="test", note=None, replacement_output=nested(500))
    for path in ("", "/status", "/events"):
        response = await client.get(f"/api/orchestrations/{run['id']}{path}", headers=acme)
        assert response.status_code == 200, (path, response.text[:300])
    detail = (await client.get(f"/api/orchestrations/{run['id']}", headers=acme)).json()
    [skipped] = [s for s in detail["steps"] if s["stepId"] == "shaky"]
    shown = json.dumps(skipped)
    assert "truncated" in shown, shown[:300]
    step = await client.get(
        f"/api/orchestrations/{run['id']}/steps/{skipped['stepRecordId']}", headers=acme
    )
    assert step.status_code == 200, step.text[:300]
