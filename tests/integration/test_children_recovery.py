"""Child orchestrations under operator recovery and abort (issue 11, S1), both databases."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from podium.agents.base import AgentContext, AgentError
from podium.agents.registry.resolver import LocalAgents
from podium.domain.outcomes import ErrorCode
from podium.storage.child_runs import ChildRuns
from podium.storage.store import SqlStore
from tests.integration.test_children import (
    ORG,
    child_doc,
    children_of,
    event_types,
    parent_doc,
    push,
    start,
    sub_step,
)
from tests.support import fast_settings, running_worker, wait_for, wait_terminal


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    s = SqlStore.open(db_url)
    yield s
    s.close()


def agents_failing_first_generation() -> LocalAgents:
    """``picky`` refuses (not retryable) in generation 1 of its step and works after."""

    async def picky(input: Any, context: AgentContext) -> dict[str, Any]:
        if context.generation == 1:
            raise AgentError(ErrorCode.AGENT_REJECTED, "picky refuses the first generation")
        return {"text": f"ok in generation {context.generation}"}

    agents = LocalAgents()
    agents.add_python("picky", picky)
    return agents


async def test_retry_of_the_parent_step_launches_a_fresh_child_and_keeps_the_old_one(
    store: SqlStore, db_url: str
) -> None:
    push(store, child_doc(agent="reject"))
    run_id = start(store, parent_doc())
    async with running_worker(store, fast_settings(db_url)):
        assert (await wait_terminal(store, run_id)).status == "failed"
        [old] = children_of(store, run_id)
        # the operator fixes the child: a new version, the broken one deactivated
        push(store, child_doc(version="1.0.1"))
        store.set_definition_status(ORG, "child", "1.0.0", "inactive")
        store.retry(run_id, actor="ops", note="child fixed in 1.0.1")
        run = await wait_terminal(store, run_id)
    assert run.status == "completed"
    kids = children_of(store, run_id)
    assert len(kids) == 2
    fresh = next(k for k in kids if k.id != old.id)
    assert (old.status, old.parent_generation) == ("failed", 1)
    assert (fresh.status, fresh.parent_generation, fresh.definition_version) == (
        "completed",
        2,
        "1.0.1",
    )
    assert old.parent_step_record_id == fresh.parent_step_record_id
    sub = sub_step(store, run_id).metadata["runtime"]["subOrchestration"]
    assert sub["childRunId"] == fresh.id
    assert sub["previousChildRunIds"] == [old.id]
    assert sub_step(store, run_id).output == {"text": "PODIUM 1.0.1"}


async def test_retry_with_resume_child_retries_the_failed_child_in_place(
    store: SqlStore, db_url: str
) -> None:
    push(store, child_doc(agent="picky"))
    run_id = start(
        store, parent_doc(parameters='{text: "x"}', mapping='{text: "$.work.output.text"}')
    )
    async with running_worker(store, fast_settings(db_url), agents_failing_first_generation()):
        assert (await wait_terminal(store, run_id)).status == "failed"
        [child] = children_of(store, run_id)
        result = store.retry(run_id, actor="ops", resume_child=True)
        assert result.run_status == "running"
        assert sub_step(store, run_id).status == "running"  # waits for the same child
        run = await wait_terminal(store, run_id)
    assert run.status == "completed"
    assert [k.id for k in children_of(store, run_id)] == [child.id]
    resumed = store.get_run(child.id)
    assert resumed.status == "completed"
    work = next(s for s in store.steps_of(child.id) if s.step_id == "work")
    assert work.generation == 2
    assert sub_step(store, run_id).output == {"text": "ok in generation 2"}
    actions = [e for e in store.events_after(run_id) if e.type == "orchestration.recovery.action"]
    assert actions[0].data["resumeChild"] is True
    assert actions[0].data["childRunId"] == child.id


async def test_resume_child_of_an_aborted_child_is_a_conflict(store: SqlStore, db_url: str) -> None:
    from podium.errors import Conflict

    push(store, child_doc(agent="sleep"))
    run_id = start(store, parent_doc(parameters='{text: "x"}'))
    async with running_worker(store, fast_settings(db_url)):
        [child] = await wait_for(lambda: children_of(store, run_id), lambda c: len(c) == 1)
        store.abort(child.id, actor="ops")
        await wait_terminal(store, run_id)
        with pytest.raises(Conflict, match="only a failed child can be resumed"):
            store.retry(run_id, actor="ops", resume_child=True)


async def test_skip_of_the_failed_parent_step_lets_the_parent_finish(
    store: SqlStore, db_url: str
) -> None:
    push(store, child_doc(agent="reject"))
    run_id = start(store, parent_doc())
    async with running_worker(store, fast_settings(db_url)):
        assert (await wait_terminal(store, run_id)).status == "failed"
        store.skip(run_id, actor="ops", replacement_output={"text": "by hand"})
        run = await wait_terminal(store, run_id)
    assert run.status == "completed"
    assert sub_step(store, run_id, "after").output["output"] == {"got": "by hand"}


async def test_runbook_section_3_sub_orchestration_failures(store: SqlStore, db_url: str) -> None:
    """The runbook's section 3 as a scenario (S1): a child fails, the parent's step fails
    with orchestration.child.failed and the parent is never left running; its checks hold
    (child detail, runtime.subOrchestration.childRunId, definition status); and its recovery
    works as written: re-activate the unpublished child definition, then retry the parent."""
    push(store, child_doc(agent="reject"))
    run_id = start(store, parent_doc())
    async with running_worker(store, fast_settings(db_url, poll_seconds=1.0)):
        run = await wait_terminal(store, run_id)
        # symptom: the step failure names orchestration.child.failed; never "still running"
        assert run.status == "failed"
        assert "orchestration.child.failed" in event_types(store, run_id)
        # check 1 and 2: the child's error, found through the parent step's metadata
        child_id = sub_step(store, run_id).metadata["runtime"]["subOrchestration"]["childRunId"]
        child = store.get_run(child_id, ORG)
        assert child.status == "failed"
        assert child.error is not None
        assert child.error["code"] == "agent_rejected"
        # the child definition gets unpublished meanwhile: a retry cannot find it
        store.set_definition_status(ORG, "child", "1.0.0", "inactive")
        store.retry(run_id, actor="ops")
        assert (await wait_terminal(store, run_id)).status == "failed"
        error = sub_step(store, run_id).error
        assert error["code"] == "child_definition_unavailable"
        # resolution: fix and re-activate the child definition, then retry the parent
        push(store, child_doc(version="1.0.1"), status="inactive")
        store.set_definition_status(ORG, "child", "1.0.1", "active")
        store.retry(run_id, actor="ops", note="child definition re-activated")
        run = await wait_terminal(store, run_id)
    assert run.status == "completed"
    assert len(children_of(store, run_id)) == 2  # the failed child is kept, linked


# -- abort cascades ------------------------------------------------------------------------


class Sleepers:
    """A ``nap`` agent that sleeps until cancelled, counting the calls in flight."""

    def __init__(self) -> None:
        self.now = 0
        self.cancelled = 0
        self._lock = threading.Lock()

    def agents(self) -> LocalAgents:
        async def nap(input: Any, context: AgentContext) -> dict[str, Any]:
            with self._lock:
                self.now += 1
            try:
                await asyncio.sleep(120)
            except asyncio.CancelledError:
                with self._lock:
                    self.cancelled += 1
                raise
            finally:
                with self._lock:
                    self.now -= 1
            return {}

        agents = LocalAgents()
        agents.add_python("nap", nap)
        return agents


def fan_doc(name: str, child: str | None, fan_out: int = 10) -> str:
    if child is None:
        steps = "    - {id: nap, agent: nap}"
    else:
        steps = "\n".join(
            f"    - {{id: c{i}, type: orchestration, orchestration: {{name: {child}}}}}"
            for i in range(fan_out)
        )
    return f"""
metadata: {{name: {name}, version: 1.0.0}}
orchestration:
  execution: {{concurrency: {{maxParallelSteps: {fan_out}}}}}
  steps:
{steps}
"""


def all_runs(store: SqlStore) -> list[Any]:
    return store.list_runs(organization=ORG, limit=500)


@pytest.mark.parametrize("moment", ["while-launching", "tree-complete"])
async def test_aborting_the_root_of_111_runs_ends_every_run_within_5_s(
    store: SqlStore, db_url: str, moment: str
) -> None:
    """S1 abort cascade: a 3-level tree with fan-out 10 (1 + 10 + 100 runs). Aborting the
    root aborts every descendant in the same operation, cancels the agent calls in flight,
    and a child being launched at that moment is never left running."""
    push(store, fan_doc("leaf", None))
    push(store, fan_doc("mid", "leaf"))
    root = start(store, fan_doc("root", "mid"))
    sleepers = Sleepers()
    settings = fast_settings(db_url, worker_concurrency=256)
    async with running_worker(store, settings, sleepers.agents()):
        if moment == "tree-complete":
            await wait_for(lambda: sleepers.now, lambda n: n == 100, timeout=60)
            assert len(all_runs(store)) == 111
        else:
            await wait_for(lambda: len(all_runs(store)), lambda n: n >= 30, timeout=60)
        aborted_at = time.monotonic()
        store.abort(root, actor="ops", reason="cascade drill")
        runs = await wait_for(
            lambda: all_runs(store),
            lambda rs: all(r.status in ("completed", "failed", "aborted") for r in rs),
            timeout=5.0,
        )
        assert time.monotonic() - aborted_at < 5.0
        await wait_for(lambda: sleepers.now, lambda n: n == 0, timeout=5.0)
        # nothing launched afterwards either (a worker that was about to create a child)
        await asyncio.sleep(settings.poll_seconds * 3)
        later = all_runs(store)
    assert len(later) == len(runs)
    assert all(r.status == "aborted" for r in later)
    tree = ChildRuns(store).tree(root)
    assert len(tree) == len(later)
    assert tree[0].id == root
    if moment == "tree-complete":
        assert len(later) == 111
        assert sleepers.cancelled == 100
        assert [n.depth for n in tree].count(2) == 100
