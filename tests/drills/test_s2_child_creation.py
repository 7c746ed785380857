"""S2: a crash between creating a child run and recording it leaves exactly one child."""

from __future__ import annotations

from pathlib import Path

import pytest

from podium.domain.definition import parse_definition
from podium.engine.launcher import launch
from podium.storage.children import FAULT_AFTER_CHILD_CREATED
from podium.storage.store import SqlStore
from tests.drills.harness import Fleet
from tests.support import wait_terminal

pytestmark = [pytest.mark.timeout(120)]

CHILD = """
metadata: {name: s2-child, version: 1.0.0}
orchestration:
  steps:
    - {id: work, agent: echo, input: {text: done}}
"""

PARENT = """
metadata: {name: s2-parent, version: 1.0.0}
orchestration:
  steps:
    - {id: a, type: orchestration, orchestration: {name: s2-child}}
    - {id: b, type: orchestration, orchestration: {name: s2-child}}
    - {id: c, type: orchestration, orchestration: {name: s2-child}}
"""


async def test_s2_worker_killed_between_creating_and_recording_a_child(
    db_url: str, tmp_path: Path
) -> None:
    """S2: worker A is SIGKILLed by the fault hook right after inserting a child run and
    before recording it on the parent step (same transaction, not committed). The step's
    lease expires, worker B claims it again and creates the child: each parent step ends
    with exactly one child, recorded at metadata.runtime.subOrchestration.childRunId."""
    store = SqlStore.open(db_url)
    try:
        store.push_definition("acme", parse_definition(CHILD))
        run_id = launch(store, parse_definition(PARENT), {}, organization="acme")
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        fault = {"PODIUM_FAULT": FAULT_AFTER_CHILD_CREATED}
        with Fleet(db_url, tmp_path / "a", env=fault) as doomed:
            a = doomed.start()
            assert a.wait_exit(timeout=60) == -9  # killed itself at the fault point
        assert store.list_runs(parent_run_id=run_id) == []  # its insert never committed
        with Fleet(db_url, tmp_path / "b") as fleet:
            fleet.start()
            run = await wait_terminal(store, run_id, timeout=60)
            fleet.check_no_unexpected_exit()
        assert run.status == "completed"
        children = store.list_runs(parent_run_id=run_id)
        assert len(children) == 3
        assert all(c.status == "completed" for c in children)
        by_step = {c.parent_step_record_id: c.id for c in children}
        steps = store.steps_of(run_id)
        for step in steps:
            assert step.metadata["runtime"]["subOrchestration"]["childRunId"] == by_step[step.id]
        assert sum(s.recoveries for s in steps) >= 1  # A's claim was reclaimed after its death
        events = store.events_after(run_id)
        started = [e.data["childRunId"] for e in events if e.type == "orchestration.child.started"]
        assert sorted(started) == sorted(by_step.values())
    finally:
        store.close()
