"""Many children ending at once on PostgreSQL: parents settle, nothing deadlocks (issue 11)."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

from podium.agents.base import AgentContext
from podium.agents.registry.resolver import LocalAgents
from podium.domain.definition import parse_definition
from podium.engine.launcher import launch
from podium.storage.store import SqlStore
from tests.support import fast_settings, running_worker, wait_for, wait_terminal

CHILDREN = 50


class Gate:
    """A ``gate`` agent that holds every call until :meth:`open`, then lets all go at once
    (both workers run on the test's event loop)."""

    def __init__(self) -> None:
        self.waiting = 0
        self._opened = asyncio.Event()
        self._lock = threading.Lock()

    def open(self) -> None:
        self._opened.set()

    def agents(self) -> LocalAgents:
        async def gate(input: Any, context: AgentContext) -> dict[str, Any]:
            with self._lock:
                self.waiting += 1
            await self._opened.wait()
            return {"child": context.run_id}

        agents = LocalAgents()
        agents.add_python("gate", gate)
        return agents


async def test_many_children_ending_at_once_settle_their_parents_without_deadlock(
    pg_schema_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """S1 under load: 50 children (of 5 parents, 10 each) end in the same instant, with two
    workers recording and settling concurrently. Every parent completes, each parent step
    within 2 s of its child's end, and no transaction meets a deadlock (the lock order of
    docs/architecture.md, "Parent and child runs")."""
    caplog.set_level(logging.WARNING)
    stores = [SqlStore.open(pg_schema_url) for _ in range(2)]
    store = stores[0]
    try:
        store.push_definition(
            "acme",
            parse_definition(
                "metadata: {name: gated, version: 1.0.0}\norchestration:\n  steps:\n"
                "    - {id: wait, agent: gate}\n    - {id: then, agent: echo, depends_on: [wait]}\n"
            ),
        )
        steps = "\n".join(
            f"    - {{id: c{i}, type: orchestration, orchestration: {{name: gated}}}}"
            for i in range(CHILDREN // 5)
        )
        doc = parse_definition(
            f"metadata: {{name: many, version: 1.0.0}}\norchestration:\n"
            f"  execution: {{concurrency: {{maxParallelSteps: 10}}}}\n  steps:\n{steps}\n"
        )
        parents = [launch(store, doc, {}, organization="acme") for _ in range(5)]
        gate = Gate()
        settings = fast_settings(pg_schema_url, worker_concurrency=64)
        async with (
            running_worker(stores[0], settings, gate.agents()),
            running_worker(stores[1], settings, gate.agents()),
        ):
            await wait_for(lambda: gate.waiting, lambda n: n == CHILDREN, timeout=60)
            gate.open()
            ended = [await wait_terminal(store, p, timeout=30) for p in parents]
        assert [r.status for r in ended] == ["completed"] * 5
        lags = []
        for parent in parents:
            children = store.list_runs(parent_run_id=parent)
            assert len(children) == CHILDREN // 5
            assert all(c.status == "completed" for c in children)
            # S1: each child's end reached its parent step within 2 s (database times)
            ended_at = {c.id: c.ended_at for c in children}
            for step in store.steps_of(parent):
                child_id = step.metadata["runtime"]["subOrchestration"]["childRunId"]
                child_ended = ended_at[child_id]
                assert step.ended_at is not None
                assert child_ended is not None
                lags.append((step.ended_at - child_ended).total_seconds())
        assert len(lags) == CHILDREN
        assert max(lags) < 2.0, sorted(lags)[-5:]
        problems = [r.getMessage() for r in caplog.records if "deadlock" in r.getMessage()]
        assert problems == []
        assert not [r for r in caplog.records if "transient database error" in r.getMessage()]
    finally:
        for s in stores:
            s.close()
