"""Manual recovery (spec section 8) through the service functions, on both databases."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from podium.domain.definition import parse_definition
from podium.errors import Conflict, PodiumError
from podium.service import definitions as defs
from podium.service import recovery, runs
from podium.service.actors import Actor
from podium.storage.store import SqlStore
from tests.support import fast_settings, running_worker, wait_terminal

ACME = Actor(organization="acme", role="operator", name="ops@acme")
ADMIN = Actor(organization="acme", role="admin", name="admin@acme")

DOC = """
metadata: {name: recoverable, version: 1.0.0}
orchestration:
  error_handling: {on_step_failure: {maxAttempts: 1}}
  steps:
    - {id: first, agent: echo, input: {text: one}}
    - {id: shaky, agent: "{agent}", depends_on: [first], input: {text: two}}
    - {id: last, agent: echo, depends_on: [shaky], input: {got: "{{ steps.shaky.output }}"}}
"""


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    s = SqlStore.open(db_url)
    yield s
    s.close()


async def failed_run(store: SqlStore, db_url: str, agent: str = "reject") -> str:
    defs.push(store, ADMIN, DOC.replace('"{agent}"', agent))
    summary, _ = runs.launch(store, ACME, definition="recoverable")
    async with running_worker(store, fast_settings(db_url)):
        run = await wait_terminal(store, summary.id)
    assert run.status == "failed"
    return run.id


async def test_retry_with_an_agent_override_completes_the_run(store: SqlStore, db_url: str) -> None:
    run_id = await failed_run(store, db_url)
    action = recovery.retry(
        store,
        ACME,
        run_id,
        note="try the echo agent",
        modifications={"agentOverrides": {"shaky": "uppercase"}, "input": {"text": "fixed"}},
    )
    assert (action.action, action.runStatus, action.stepId, action.generation) == (
        "retry",
        "running",
        "shaky",
        2,
    )
    async with running_worker(store, fast_settings(db_url)):
        run = await wait_terminal(store, run_id)
    assert run.status == "completed"
    shaky = {s.step_id: s for s in store.steps_of(run_id)}["shaky"]
    assert shaky.output["output"] == {"text": "FIXED"}
    assert run.error is None  # the failure it reported was dealt with
    assert shaky.generation == 2
    assert shaky.metadata["manualRecovery"][0]["actor"] == "ops@acme"
    events = store.events_after(run_id)
    recovered = [e for e in events if e.type == "orchestration.recovery.action"]
    assert recovered[0].data["action"] == "retry"
    assert recovered[0].data["note"] == "try the echo agent"
    keys = {e.data.get("generation") for e in events if e.step_id == "shaky" and e.data}
    assert 2 in keys


async def test_skip_with_a_replacement_output_lets_dependents_run(
    store: SqlStore, db_url: str
) -> None:
    run_id = await failed_run(store, db_url)
    action = recovery.skip(store, ACME, run_id, replacement_output={"text": "manual"})
    assert action.stepId == "shaky"
    # until a worker takes up the released step, the skip is in flight
    assert store.get_run(run_id).recovery_in_flight == {
        "action": "skip",
        "actor": "ops@acme",
        "stepId": "shaky",
        "stepRecordId": None,
        "at": store.get_run(run_id).recovery_in_flight["at"],  # type: ignore[index]
    }
    with pytest.raises(Conflict, match="in flight"):
        recovery.abort(store, ACME, run_id)
    async with running_worker(store, fast_settings(db_url)):
        run = await wait_terminal(store, run_id)
    assert run.status == "completed"
    assert run.recovery_in_flight is None
    last = {s.step_id: s for s in store.steps_of(run_id)}["last"]
    assert last.input == {"got": {"text": "manual"}}


async def test_terminal_runs_refuse_every_action(store: SqlStore, db_url: str) -> None:
    """M2: mutating a completed or aborted run is a conflict."""
    run_id = await failed_run(store, db_url)
    recovery.abort(store, ACME, run_id, note="give up")
    for act in (
        lambda: recovery.retry(store, ACME, run_id),
        lambda: recovery.skip(store, ACME, run_id),
        lambda: recovery.abort(store, ACME, run_id),
    ):
        with pytest.raises(Conflict, match="aborted"):
            act()


@pytest.mark.parametrize("kind", ["retry", "skip", "abort", "mixed"])
async def test_ten_concurrent_actions_have_exactly_one_winner(
    store: SqlStore, db_url: str, kind: str
) -> None:
    """M1: ten concurrent actions on one run: one succeeds, nine conflict, one attempt."""
    run_id = await failed_run(store, db_url)
    shaky = {s.step_id: s for s in store.steps_of(run_id)}["shaky"]
    kinds = ["retry", "skip", "abort"] * 4 if kind == "mixed" else [kind] * 10
    calls = {
        "retry": lambda: recovery.retry(store, ACME, run_id, step_record_id=shaky.id),
        "skip": lambda: recovery.skip(store, ACME, run_id, step_record_id=shaky.id),
        "abort": lambda: recovery.abort(store, ACME, run_id),
    }
    barrier = threading.Barrier(10)
    outcomes: list[Any] = []

    def act(which: str) -> None:
        barrier.wait()
        try:
            outcomes.append(calls[which]())
        except PodiumError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=act, args=(k,)) for k in kinds[:10]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    wins = [o for o in outcomes if not isinstance(o, Exception)]
    conflicts = [o for o in outcomes if isinstance(o, Conflict)]
    assert len(wins) == 1, outcomes
    assert len(conflicts) == 9
    step = store.get_step(shaky.id)
    assert step.generation <= 2  # at most one new attempt


async def test_a_retry_in_flight_blocks_other_actions_until_its_step_settles(
    store: SqlStore, db_url: str
) -> None:
    run_id = await failed_run(store, db_url)
    recovery.retry(store, ACME, run_id, modifications={"agentOverrides": {"shaky": "echo"}})
    with pytest.raises(Conflict, match="in flight"):
        recovery.abort(store, ACME, run_id)
    async with running_worker(store, fast_settings(db_url)):
        await wait_terminal(store, run_id)
    assert store.get_run(run_id).recovery_in_flight is None


async def test_another_organization_cannot_see_or_touch_the_run(
    store: SqlStore, db_url: str
) -> None:
    from podium.errors import NotFound

    run_id = await failed_run(store, db_url)
    other = Actor(organization="globex", role="admin", name="intruder")
    with pytest.raises(NotFound):
        runs.status(store, other, run_id)
    with pytest.raises(NotFound):
        recovery.retry(store, other, run_id)
    assert store.get_run(run_id).status == "failed"


async def test_viewers_cannot_change_anything(store: SqlStore, db_url: str) -> None:
    from podium.errors import Forbidden

    run_id = await failed_run(store, db_url)
    viewer = Actor(organization="acme", role="viewer", name="auditor")
    with pytest.raises(Forbidden):
        recovery.retry(store, viewer, run_id)
    with pytest.raises(Forbidden):
        runs.launch(store, viewer, definition="recoverable")
    assert runs.status(store, viewer, run_id).status == "failed"


def test_launch_ranges_pick_the_highest_active_version(store: SqlStore) -> None:
    for version in ("1.0.0", "1.4.0", "2.0.0"):
        defs.push(store, ADMIN, DOC.replace('"{agent}"', "echo").replace("1.0.0", version))
    defs.set_status(store, ADMIN, "recoverable", "2.0.0", "inactive")
    summary, _ = runs.launch(store, ACME, definition="recoverable")
    assert summary.version == "1.4.0"
    summary, _ = runs.launch(store, ACME, definition="recoverable", version="~1.0")
    assert summary.version == "1.0.0"
    with pytest.raises(PodiumError, match="no active version matching"):
        runs.launch(store, ACME, definition="recoverable", version="^2")


def test_idempotent_launch_replays_and_refuses_another_body(store: SqlStore) -> None:
    """I1 (sequential): same key and body, one run; same key, other body, 422."""
    from podium.errors import InvalidInput

    defs.push(store, ADMIN, DOC.replace('"{agent}"', "echo"))
    first, replayed_first = runs.launch(
        store, ACME, definition="recoverable", idempotency_key="k-1"
    )
    again, replayed = runs.launch(store, ACME, definition="recoverable", idempotency_key="k-1")
    assert (replayed_first, replayed) == (False, True)
    assert again == first
    with pytest.raises(InvalidInput):
        runs.launch(store, ACME, definition="recoverable", version="1.0.0", idempotency_key="k-1")
    other_org = Actor(organization="globex", role="operator", name="g")
    defs.push(store, Actor("globex", "admin", "ga"), DOC.replace('"{agent}"', "echo"))
    theirs, replayed_theirs = runs.launch(
        store, other_org, definition="recoverable", idempotency_key="k-1"
    )
    assert not replayed_theirs
    assert theirs.id != first.id
    assert len(runs.list_runs(store, ACME).items) == 1


def test_validation_lists_every_problem(store: SqlStore) -> None:
    bad = defs.validate("metadata: {name: x, version: 1.0.0}\norchestration: {steps: []}")
    assert not bad.valid
    assert bad.issues
    good = defs.validate(parse_definition(DOC.replace('"{agent}"', "echo")).to_document())
    assert good.valid
    assert good.steps == 3
