"""Child orchestrations over HTTP (issue 11): push refusals, children lists, the tree,
resumeChild, and organization scoping."""

from __future__ import annotations

import httpx

from tests.api.conftest import Finisher
from tests.api.helpers import assert_problem, launch, push

CHILD = """
metadata: {name: api-child, version: 1.2.0}
orchestration:
  parameters: [{name: text, type: string, required: true}]
  steps:
    - {id: work, agent: uppercase, input: {text: "{{ parameters.text }}"}}
"""

PARENT = """
metadata: {name: api-parent, version: 1.0.0}
orchestration:
  steps:
    - id: one
      type: orchestration
      orchestration: {name: api-child, version: "~1.2", parameters: {text: a}}
    - id: two
      type: orchestration
      orchestration: {name: api-child, version: "^1", parameters: {text: b}}
"""


def loop(name: str, target: str) -> str:
    return (
        f"metadata: {{name: {name}, version: 1.0.0}}\norchestration:\n  steps:\n"
        f"    - {{id: go, type: orchestration, orchestration: {{name: {target}}}}}\n"
    )


async def test_children_are_listed_shown_and_form_a_tree(
    client: httpx.AsyncClient, acme: dict[str, str], globex: dict[str, str], finish: Finisher
) -> None:
    await push(client, acme, CHILD)
    await push(client, acme, PARENT)
    run = await launch(client, acme, "api-parent")
    assert await finish(run["id"]) == "completed"
    listed = await client.get(f"/api/orchestrations?parentRunId={run['id']}", headers=acme)
    assert listed.status_code == 200
    children = listed.json()["items"]
    assert len(children) == 2
    assert {c["parentRunId"] for c in children} == {run["id"]}
    detail = (await client.get(f"/api/orchestrations/{run['id']}", headers=acme)).json()
    assert sorted(c["id"] for c in detail["children"]) == sorted(c["id"] for c in children)
    assert {c["status"] for c in detail["children"]} == {"completed"}
    child_detail = await client.get(f"/api/orchestrations/{children[0]['id']}", headers=acme)
    assert child_detail.json()["parent"]["id"] == run["id"]
    tree = (await client.get(f"/api/orchestrations/{run['id']}/tree", headers=acme)).json()
    assert [n["depth"] for n in tree] == [0, 1, 1]
    assert {n["parentStepId"] for n in tree[1:]} == {"one", "two"}
    assert all(n["stepsDone"] == n["stepsTotal"] for n in tree)
    # another organization sees none of it
    other = await client.get(f"/api/orchestrations/{run['id']}/tree", headers=globex)
    assert_problem(other, 404)
    none = await client.get(f"/api/orchestrations?parentRunId={run['id']}", headers=globex)
    assert none.json()["items"] == []


async def test_a_cycle_is_refused_at_push_with_422_naming_the_path(
    client: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    await push(client, acme, loop("ping", "pong"))
    yaml_body = {"Content-Type": "application/yaml"}
    response = await client.post(
        "/api/definitions", content=loop("pong", "ping"), headers=acme | yaml_body
    )
    body = assert_problem(response, 422)
    [issue] = body["issues"]
    assert issue["path"] == "orchestration.steps[0].orchestration"
    assert "pong -> ping -> pong" in issue["message"]


async def test_resume_child_is_accepted_by_the_retry_action_only(
    client: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    await push(client, acme, CHILD)
    run = await launch(client, acme, "api-child", parameters={"text": "x"})
    skip = await client.post(
        f"/api/orchestrations/{run['id']}/actions/skip", json={"resumeChild": True}, headers=acme
    )
    assert_problem(skip, 422)
    retry = await client.post(
        f"/api/orchestrations/{run['id']}/actions/retry", json={"resumeChild": True}, headers=acme
    )
    assert_problem(retry, 409)  # nothing failed yet
