"""Child orchestrations (spec section 6, issue 11) with a real worker, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from podium.domain.definition import parse_definition
from podium.engine.launcher import launch
from podium.errors import DefinitionInvalid, DuplicateKey
from podium.service import definitions as definition_service
from podium.service.actors import Actor
from podium.storage.records import RunRecord
from podium.storage.store import SqlStore
from tests.support import fast_settings, running_worker, wait_for, wait_terminal

ORG = "acme"


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    s = SqlStore.open(db_url)
    yield s
    s.close()


def child_doc(
    name: str = "child", version: str = "1.0.0", agent: str = "uppercase", extra: str = ""
) -> str:
    return f"""
metadata: {{name: {name}, version: {version}}}
orchestration:
  parameters:
    - {{name: text, type: string, required: true}}
  steps:
    - {{id: work, agent: {agent}, input: {{text: "{{{{ parameters.text }}}} {version}"}}}}
{extra}"""


def parent_doc(
    child: str = "child",
    version: str = "^1",
    parameters: str = '{text: "{{ parameters.topic }}"}',
    mapping: str = '{text: "$.work.output.text"}',
    name: str = "parent",
    retry: str = "",
) -> str:
    return f"""
metadata: {{name: {name}, version: 1.0.0}}
orchestration:
  parameters:
    - {{name: topic, type: string, default: podium}}
  steps:
    - id: sub
      type: orchestration
      orchestration: {{name: {child}, version: "{version}", parameters: {parameters}}}
      output_mapping: {mapping}
      {retry}
    - {{id: after, agent: echo, depends_on: [sub], input: {{got: "{{{{ steps.sub.text }}}}"}}}}
"""


def push(store: SqlStore, doc: str, org: str = ORG, status: str = "active") -> None:
    store.push_definition(org, parse_definition(doc), status=status)


def start(store: SqlStore, doc: str, parameters: dict[str, Any] | None = None) -> str:
    return launch(store, parse_definition(doc), parameters or {}, organization=ORG)


def sub_step(store: SqlStore, run_id: str, step_id: str = "sub") -> Any:
    return next(s for s in store.steps_of(run_id) if s.step_id == step_id)


def children_of(store: SqlStore, run_id: str) -> list[RunRecord]:
    return store.list_runs(parent_run_id=run_id, organization=ORG)


def event_types(store: SqlStore, run_id: str) -> list[str]:
    return [e.type for e in store.events_after(run_id)]


async def test_a_child_runs_the_highest_matching_version_and_its_outputs_become_the_step_output(
    store: SqlStore, db_url: str
) -> None:
    for version in ("1.0.0", "1.4.0", "2.0.0"):
        push(store, child_doc(version=version))
    push(store, child_doc(version="1.9.0"), status="inactive")
    run_id = start(store, parent_doc(), {"topic": "tides"})
    async with running_worker(store, fast_settings(db_url)):
        run = await wait_terminal(store, run_id)
    assert run.status == "completed"
    [child] = children_of(store, run_id)
    assert child.definition_version == "1.4.0"  # ^1, active only
    assert child.status == "completed"
    assert child.organization_slug == ORG
    step = sub_step(store, run_id)
    assert (child.parent_run_id, child.parent_step_record_id) == (run_id, step.id)
    assert step.output == {"text": "TIDES 1.4.0"}
    sub = step.metadata["runtime"]["subOrchestration"]
    assert sub["childRunId"] == child.id
    assert (sub["definition"], sub["version"], sub["versionRange"]) == ("child", "1.4.0", "^1")
    after = sub_step(store, run_id, "after")
    assert after.output["output"] == {"got": "TIDES 1.4.0"}
    parent_events = event_types(store, run_id)
    assert parent_events.index("orchestration.child.started") < parent_events.index(
        "orchestration.child.completed"
    )
    # the child's own events are on its own log, the parent's carries only child.*
    assert event_types(store, child.id)[0] == "orchestration.run.created"
    assert not any(t.startswith("orchestration.child.") for t in event_types(store, child.id))
    assert child.id > run_id  # id order is ancestor-first order (the lock order)


async def test_a_large_child_result_reaches_the_parent_step_in_full(
    store: SqlStore, db_url: str
) -> None:
    """T2: a child's run row holds its large outputs as markers; the parent step takes the
    full values from the child's step records, and its events carry them bounded."""
    push(store, child_doc())
    text = "w" * 100_000
    run_id = start(store, parent_doc(), {"topic": text})
    async with running_worker(store, fast_settings(db_url)):
        run = await wait_terminal(store, run_id)
    assert run.status == "completed"
    [child] = children_of(store, run_id)
    assert child.outputs is not None
    assert child.outputs["work"]["truncated"] is True
    expected = {"text": f"{text} 1.0.0".upper()}
    assert sub_step(store, run_id).output == expected
    assert sub_step(store, run_id, "after").output["output"] == {"got": expected["text"]}
    events = {e.type: e.data for e in store.events_after(run_id) if e.step_id == "sub"}
    assert events["orchestration.child.completed"]["outputs"]["work"]["truncated"] is True
    assert events["orchestration.step.completed"]["output"]["truncated"] is True


@pytest.mark.parametrize(
    ("version", "picked"),
    [("~1.2", "1.2.5"), (">=1.0 <2", "1.3.0"), ("1.2.0", "1.2.0"), ("^2", "2.1.0")],
)
async def test_version_ranges(store: SqlStore, db_url: str, version: str, picked: str) -> None:
    for v in ("1.2.0", "1.2.5", "1.3.0", "2.1.0"):
        push(store, child_doc(version=v))
    run_id = start(store, parent_doc(version=version))
    async with running_worker(store, fast_settings(db_url)):
        await wait_terminal(store, run_id)
    [child] = children_of(store, run_id)
    assert child.definition_version == picked


async def test_a_failed_child_fails_the_parent_step_within_two_ticks(
    store: SqlStore, db_url: str
) -> None:
    """S1: the child's failure reaches the parent within two scheduler ticks (never later
    than 2 s) and the parent does not stay running."""
    push(store, child_doc(agent="reject"))
    settings = fast_settings(db_url, poll_seconds=1.0)
    run_id = start(store, parent_doc())
    async with running_worker(store, settings):
        run = await wait_terminal(store, run_id)
    assert run.status == "failed"
    [child] = children_of(store, run_id)
    assert child.status == "failed"
    step = sub_step(store, run_id)
    assert step.status == "failed"
    assert step.error["code"] == "child_orchestration_failed"
    assert child.id in step.error["message"]
    assert "reject agent refuses" in step.error["message"]
    assert child.ended_at is not None
    assert step.ended_at is not None
    lag = (step.ended_at - child.ended_at).total_seconds()
    assert 0 <= lag < min(2 * settings.poll_seconds, 2.0)
    failed = [e for e in store.events_after(run_id) if e.type == "orchestration.child.failed"]
    assert len(failed) == 1
    assert failed[0].data["childRunId"] == child.id
    assert failed[0].data["error"]["code"] == "agent_rejected"
    assert sub_step(store, run_id, "after").status == "pending"


async def test_aborting_a_child_fails_the_parent_step_as_aborted(
    store: SqlStore, db_url: str
) -> None:
    """S1: a child aborted on its own reaches the parent as child_orchestration_aborted."""
    push(store, child_doc(agent="sleep"))
    run_id = start(store, parent_doc(parameters='{text: "x"}'))
    async with running_worker(store, fast_settings(db_url)):
        [child] = await wait_for(lambda: children_of(store, run_id), lambda c: len(c) == 1)
        store.abort(child.id, actor="ops", reason="drill")
        ended = time.monotonic()
        run = await wait_terminal(store, run_id)
        assert time.monotonic() - ended < 2.0
    assert run.status == "failed"
    step = sub_step(store, run_id)
    assert step.error["code"] == "child_orchestration_aborted"


async def test_parameters_that_do_not_fit_the_child_fail_with_input_resolution_error(
    store: SqlStore, db_url: str
) -> None:
    push(store, child_doc())
    run_id = start(store, parent_doc(parameters="{text: 3, colour: red}"))
    async with running_worker(store, fast_settings(db_url)):
        run = await wait_terminal(store, run_id)
    assert run.status == "failed"
    step = sub_step(store, run_id)
    assert step.error["code"] == "input_resolution_error"
    assert "parameters.text" in step.error["message"]
    assert "parameters.colour" in step.error["message"]
    assert children_of(store, run_id) == []


@pytest.mark.parametrize("state", ["missing", "inactive"])
async def test_a_missing_or_inactive_child_definition_fails_the_step(
    store: SqlStore, db_url: str, state: str
) -> None:
    if state == "inactive":
        push(store, child_doc(), status="inactive")
    run_id = start(store, parent_doc(version="^1"))
    async with running_worker(store, fast_settings(db_url)):
        run = await wait_terminal(store, run_id)
    assert run.status == "failed"
    error = sub_step(store, run_id).error
    assert error["code"] == "child_definition_unavailable"
    assert "child definition child" in error["message"]
    assert "'^1'" in error["message"]
    assert error["details"] == {"definition": "child", "versionRange": "^1"}


async def test_children_run_in_the_parents_organization_only(store: SqlStore, db_url: str) -> None:
    """A definition of another organization is never used; one of ``global`` is, and the
    child still runs in the parent's organization."""
    push(store, child_doc(name="elsewhere"), org="other-org")
    push(store, child_doc(name="shared"), org="global")
    other = start(store, parent_doc(child="elsewhere", name="p-other"))
    shared = start(store, parent_doc(child="shared", name="p-shared"))
    async with running_worker(store, fast_settings(db_url)):
        assert (await wait_terminal(store, other)).status == "failed"
        assert (await wait_terminal(store, shared)).status == "completed"
    assert sub_step(store, other).error["code"] == "child_definition_unavailable"
    assert children_of(store, other) == []
    [child] = children_of(store, shared)
    assert child.organization_slug == ORG
    assert child.metadata["definitionOrganization"] == "global"


def chain(name: str, target: str | None) -> str:
    if target is None:
        return (
            f"metadata: {{name: {name}, version: 1.0.0}}\norchestration:\n  steps:\n"
            "    - {id: w, agent: echo}\n"
        )
    return (
        f"metadata: {{name: {name}, version: 1.0.0}}\norchestration:\n  steps:\n"
        f"    - {{id: c, type: orchestration, orchestration: {{name: {target}, version: '^1'}}}}\n"
    )


def test_cycles_are_refused_at_push_and_at_launch_naming_the_path(store: SqlStore) -> None:
    admin = Actor(name="admin", organization=ORG, role="admin")
    definition_service.push(store, admin, chain("cyc-b", "cyc-c"))
    definition_service.push(store, admin, chain("cyc-c", "cyc-a"))
    with pytest.raises(DefinitionInvalid) as refused:
        definition_service.push(store, admin, chain("cyc-a", "cyc-b"))
    [issue] = refused.value.issues
    assert issue.path == "orchestration.steps[0].orchestration"
    assert "cyc-a -> cyc-b -> cyc-c -> cyc-a" in issue.message
    with pytest.raises(DefinitionInvalid):
        start(store, chain("cyc-a", "cyc-b"))
    with pytest.raises(DefinitionInvalid) as itself:
        start(store, chain("selfish", "selfish"))
    assert "selfish -> selfish" in itself.value.issues[0].message


def test_nesting_deeper_than_the_limit_is_refused(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PODIUM_MAX_CHILD_DEPTH", "3")
    admin = Actor(name="admin", organization=ORG, role="admin")
    definition_service.push(store, admin, chain("d4", None))
    definition_service.push(store, admin, chain("d3", "d4"))
    definition_service.push(store, admin, chain("d2", "d3"))
    definition_service.push(store, admin, chain("d1", "d2"))  # d1 -> d2 -> d3 -> d4: 3 deep
    with pytest.raises(DefinitionInvalid) as refused:
        definition_service.push(store, admin, chain("d0", "d1"))
    message = refused.value.issues[0].message
    assert "deeper than 3" in message
    assert "d0 -> d1 -> d2 -> d3 -> d4" in message
    assert store.list_definitions(ORG, name="d0") == []


async def test_max_parallel_steps_bounds_running_children(store: SqlStore, db_url: str) -> None:
    """Children count as steps: at most maxParallelSteps of them run at once."""
    push(
        store,
        """
metadata: {name: napper, version: 1.0.0}
orchestration:
  steps:
    - {id: nap, agent: sleep, input: {seconds: 0.4}}
""",
    )
    steps = "\n".join(
        f"    - {{id: c{i}, type: orchestration, orchestration: {{name: napper}}}}"
        for i in range(6)
    )
    doc = f"""
metadata: {{name: fanout, version: 1.0.0}}
orchestration:
  execution: {{concurrency: {{maxParallelSteps: 2}}}}
  steps:
{steps}
"""
    run_id = start(store, doc)
    peak = 0
    async with running_worker(store, fast_settings(db_url)):
        deadline = time.monotonic() + 30
        while store.get_run(run_id).status not in ("completed", "failed", "aborted"):
            active = [c for c in children_of(store, run_id) if c.status == "running"]
            peak = max(peak, len(active))
            assert time.monotonic() < deadline
            await wait_for(lambda: None, lambda _: True)
    assert store.get_run(run_id).status == "completed"
    assert len(children_of(store, run_id)) == 6
    assert peak == 2


def test_a_second_child_for_the_same_parent_step_attempt_is_refused(store: SqlStore) -> None:
    """S2 backstop: the database holds at most one child per (parent step record,
    generation, attempt), whatever path tries to create another."""

    from podium.storage.records import LaunchRequest

    push(store, child_doc())
    parent = start(store, parent_doc())
    step = sub_step(store, parent)
    request = LaunchRequest(
        definition=parse_definition(child_doc()),
        parameters={"text": "x"},
        organization_slug=ORG,
        parent_run_id=parent,
        parent_step_record_id=step.id,
        root_run_id=parent,
        depth=1,
        parent_generation=1,
        parent_attempt=1,
    )
    store.launch(request)
    with pytest.raises(DuplicateKey):  # the unique index, mapped to a 409 by the dialect seam
        store.launch(request)
    assert len(children_of(store, parent)) == 1


async def test_a_parent_past_its_deadline_aborts_its_child(store: SqlStore, db_url: str) -> None:
    """S1 safety net: the parent fails at its deadline (run_timeout on the waiting step);
    the child, whose parent step no longer waits for it, is aborted within a sweep."""
    push(
        store,
        """
metadata: {name: child, version: 1.0.0}
orchestration:
  parameters: [{name: text, type: string}]
  steps:
    - {id: work, agent: sleep, input: {seconds: 60}}
""",
    )
    doc = parent_doc(parameters='{text: "x"}').replace(
        "  steps:\n", "  execution: {timeoutSeconds: 1}\n  steps:\n", 1
    )
    run_id = start(store, doc)
    async with running_worker(store, fast_settings(db_url)):
        run = await wait_terminal(store, run_id)
        assert run.status == "failed"
        assert sub_step(store, run_id).error["code"] == "run_timeout"
        [child] = children_of(store, run_id)
        child = await wait_terminal(store, child.id, timeout=10)
    assert child.status == "aborted"


async def test_aborting_a_parent_expires_the_approvals_of_its_children(
    store: SqlStore, db_url: str
) -> None:
    """The abort cascade reaches a child waiting at a human checkpoint: the child is aborted
    and its pending approval expires, with the reason, in the same operation."""
    gated = """
metadata: {name: child, version: 1.0.0}
orchestration:
  parameters:
    - {name: text, type: string, required: true}
  steps:
    - id: work
      agent: uppercase
      input: {text: "{{ parameters.text }}"}
      checkpoint_after: {question: "Keep it?"}
"""
    push(store, gated)
    parent = start(store, parent_doc())
    async with running_worker(store, fast_settings(db_url)):
        [child] = await wait_for(
            lambda: children_of(store, parent),
            lambda found: len(found) == 1 and found[0].status == "checkpoint",
        )
        [approval] = store.pending_approvals(child.id)
        store.abort(parent, actor="ops", reason="stop everything")
    assert store.get_run(child.id).status == "aborted"
    expired = store.get_approval(approval.id)
    assert expired.status == "expired"
    assert expired.decided_by == "ops"
    assert store.pending_approvals(child.id) == []
