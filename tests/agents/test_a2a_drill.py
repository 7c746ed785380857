"""Drill: a worker is SIGKILLed while its step waits on an A2A task; the worker that reclaims
the step re-attaches to that task instead of sending the message again, so the agent gets
exactly one message for the step."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from podium.domain.definition import parse_definition
from podium.engine.launcher import launch
from podium.storage.store import SqlStore
from tests.agents.a2a_servers import AgentFarm
from tests.drills.harness import ROOT, WorkerProc
from tests.support import wait_for, wait_terminal

pytestmark = pytest.mark.timeout(120)

HOLD = parse_definition(
    """
metadata: {name: a2a-drill, version: 1.0.0}
orchestration:
  steps:
    - {id: wait, agent: remote, input: {mode: hold, text: "survive a crash"}}
"""
)


class Workers:
    """Worker processes running the A2A agent ``remote``; all killed when the block ends."""

    def __init__(self, db_url: str, agent_url: str, workdir: Path) -> None:
        self.argv = [
            sys.executable,
            "-m",
            "tests.agents.a2a_worker_proc",
            db_url,
            "--agent",
            f"remote={agent_url}",
        ]
        self.workdir = workdir
        self.env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.started: list[WorkerProc] = []

    def start(self) -> WorkerProc:
        stderr_path = self.workdir / f"worker-{len(self.started)}.stderr"
        with stderr_path.open("w") as err:
            proc = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        worker = WorkerProc(proc, stderr_path, {})
        self.started.append(worker)
        worker.wait_ready()
        return worker

    def close(self) -> None:
        for worker in self.started:
            if worker.alive:
                worker.kill()
            if worker.proc.stdout is not None:
                worker.proc.stdout.close()

    def stderr(self) -> str:
        return "\n".join(f"--- worker {w.pid} ---\n{w.stderr()}" for w in self.started)


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    s = SqlStore.open(db_url)
    yield s
    s.close()


@pytest.mark.parametrize("path", ["v1-stream", "v03-poll", "rest-stream"])
async def test_a_killed_workers_step_reattaches_and_the_agent_gets_one_message(
    store: SqlStore, db_url: str, farm: AgentFarm, tmp_path: Path, path: str
) -> None:
    scripted = farm.agent(path)
    workers = Workers(db_url, farm.url(path), tmp_path)
    try:
        a = workers.start()
        run_id = launch(store, HOLD, {}, organization="acme")
        (step,) = await wait_for(
            lambda: store.steps_of(run_id),
            lambda steps: bool(steps[0].metadata.get("runtime", {}).get("a2a")),
        )
        recorded = step.metadata["runtime"]["a2a"]
        key = f"{run_id}:{step.id}:{step.generation}"
        assert scripted.messages_for(key) == 1
        assert step.lease_owner == a.worker_id

        a.kill()
        seen = len(farm.calls(path))
        b = workers.start()
        await wait_for(lambda: farm.calls(path)[seen:], lambda calls: "get" in calls, timeout=30)
        scripted.gate(key).open()
        run = await wait_terminal(store, run_id, timeout=30)

        assert run.status == "completed", workers.stderr()
        (done,) = store.steps_of(run_id)
        assert scripted.messages_for(key) == 1
        assert not scripted.cancelled(key).is_set()
        assert (done.attempt, done.recoveries) == (1, 1)
        assert done.lease_owner is None
        assert done.output["a2a"]["taskId"] == recorded["taskId"]
        assert done.output["output"]["text"] == "survive a crash\nbeta"
        assert f"re-attaching to task {recorded['taskId']}" in b.stderr()
    finally:
        workers.close()
