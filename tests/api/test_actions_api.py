"""Manual recovery over HTTP (spec section 8): retry, skip, abort; M1 and M2."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from podium.storage.store import SqlStore
from tests.api.conftest import KeyMaker
from tests.api.helpers import (
    ECHO,
    Finisher,
    assert_problem,
    bearer,
    failed_run,
    launch,
    push,
)


def actions(run_id: str, action: str) -> str:
    return f"/api/orchestrations/{run_id}/actions/{action}"


async def test_retry_with_modifications_completes_the_run_and_records_the_key_name(
    client: httpx.AsyncClient, make_key: KeyMaker, finish: Finisher, store: SqlStore
) -> None:
    admin = bearer(make_key("acme", "admin"))
    run = await failed_run(client, admin, finish)
    operator = bearer(make_key("acme", "operator", name="oncall@acme"))
    response = await client.post(
        actions(run["id"], "retry"),
        json={
            "note": "use the echo agent",
            "modifications": {"agentOverrides": {"shaky": "uppercase"}, "input": {"text": "ok"}},
        },
        headers=operator,
    )
    assert response.status_code == 200, response.text
    action = response.json()
    assert (action["action"], action["runStatus"], action["stepId"], action["generation"]) == (
        "retry",
        "running",
        "shaky",
        2,
    )
    assert await finish(run["id"]) == "completed"
    shaky = store.get_step(action["stepRecordId"])
    assert shaky.metadata["manualRecovery"][0]["actor"] == "oncall@acme"
    events = (await client.get(f"/api/orchestrations/{run['id']}/events", headers=admin)).json()
    recovery = [e for e in events if e["type"] == "orchestration.recovery.action"]
    assert recovery[0]["data"]["note"] == "use the echo agent"


async def test_skip_with_a_replacement_output_lets_dependents_run(
    client: httpx.AsyncClient, acme: dict[str, str], finish: Finisher, store: SqlStore
) -> None:
    run = await failed_run(client, acme, finish)
    steps = {s.step_id: s for s in store.steps_of(run["id"])}
    response = await client.post(
        actions(run["id"], "skip"),
        json={"stepRecordId": steps["shaky"].id, "replacementOutput": {"text": "manual"}},
        headers=acme,
    )
    assert response.json()["stepId"] == "shaky"
    assert await finish(run["id"]) == "completed"
    last = {s.step_id: s for s in store.steps_of(run["id"])}["last"]
    assert last.input == {"got": {"text": "manual"}}


async def test_abort_without_a_body_aborts_the_run(
    client: httpx.AsyncClient, acme: dict[str, str], finish: Finisher
) -> None:
    run = await failed_run(client, acme, finish)
    response = await client.post(actions(run["id"], "abort"), headers=acme)
    assert (response.status_code, response.json()["runStatus"]) == (200, "aborted")


async def test_action_bodies_are_validated(
    client: httpx.AsyncClient, acme: dict[str, str], finish: Finisher
) -> None:
    run = await failed_run(client, acme, finish)
    cases: list[tuple[str, dict[str, Any], list[str]]] = [
        ("retry", {"replacementOutput": 1}, ["body.replacementOutput"]),
        ("skip", {"delaySeconds": 5, "force": True}, ["body.delaySeconds", "body.force"]),
        ("abort", {"stepRecordId": "x"}, ["body.stepRecordId"]),
        ("retry", {"delaySeconds": -1}, ["body.delaySeconds"]),
        ("retry", {"modifications": {"inputs": {}}}, ["body.modifications.inputs"]),
        ("retry", {"stepRecrdId": "x"}, ["body.stepRecrdId"]),
    ]
    for action, body, paths in cases:
        response = await client.post(actions(run["id"], action), json=body, headers=acme)
        problem = assert_problem(response, 422)
        assert [i["path"] for i in problem["issues"]] == paths, (action, body)
    # nulls and force: false are "not set", whatever the action
    neutral = {"replacementOutput": None, "force": False, "stepRecordId": None}
    response = await client.post(actions(run["id"], "retry"), json=neutral, headers=acme)
    assert response.status_code == 200, response.text


async def test_viewers_cannot_act_and_unknown_steps_are_404(
    client: httpx.AsyncClient, make_key: KeyMaker, finish: Finisher
) -> None:
    admin = bearer(make_key("acme", "admin"))
    run = await failed_run(client, admin, finish)
    viewer = bearer(make_key("acme", "viewer"))
    for action in ("retry", "skip", "abort"):
        assert_problem(await client.post(actions(run["id"], action), headers=viewer), 403)
    unknown = await client.post(
        actions(run["id"], "retry"), json={"stepRecordId": "nope"}, headers=admin
    )
    assert_problem(unknown, 404)


@pytest.mark.parametrize("kind", ["retry", "mixed"])
async def test_ten_concurrent_actions_have_exactly_one_winner(
    client: httpx.AsyncClient, acme: dict[str, str], finish: Finisher, store: SqlStore, kind: str
) -> None:
    """M1: ten concurrent actions on one run: one 2xx, nine 409 problems, one new attempt."""
    run = await failed_run(client, acme, finish)
    shaky = {s.step_id: s for s in store.steps_of(run["id"])}["shaky"]
    kinds = ["retry", "skip", "abort"] * 4 if kind == "mixed" else ["retry"] * 10
    bodies = {"retry": {"stepRecordId": shaky.id}, "skip": {"stepRecordId": shaky.id}, "abort": {}}
    responses = await asyncio.gather(
        *(client.post(actions(run["id"], k), json=bodies[k], headers=acme) for k in kinds[:10])
    )
    wins = [r for r in responses if r.is_success]
    assert len(wins) == 1, [r.text for r in responses]
    conflicts = [r for r in responses if r.status_code == 409]
    assert len(conflicts) == 9
    for response in conflicts:
        assert_problem(response, 409)
    assert store.get_step(shaky.id).generation <= 2  # at most one new attempt


@pytest.mark.parametrize("ending", ["completed", "aborted"])
async def test_ended_runs_refuse_every_action_with_409(
    client: httpx.AsyncClient, acme: dict[str, str], finish: Finisher, ending: str
) -> None:
    """M2: mutating a completed or aborted run is a 409 problem+json."""
    if ending == "completed":
        await push(client, acme, ECHO)
        run = await launch(client, acme, "greet")
        assert await finish(run["id"]) == "completed"
    else:
        run = await failed_run(client, acme, finish)
        assert (await client.post(actions(run["id"], "abort"), headers=acme)).is_success
    for action in ("retry", "skip", "abort"):
        response = await client.post(actions(run["id"], action), json={}, headers=acme)
        assert ending in assert_problem(response, 409)["detail"]
