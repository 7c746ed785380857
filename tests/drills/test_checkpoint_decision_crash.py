"""Issue 10 §5 (crash safety of checkpoints): a ``podium serve`` process (the API and its
embedded worker) is SIGKILLed by the fault hook right after a decision on an approval
committed, before its answer went out and before anything resumed. The run resumes on
another process; on ``continue`` the checkpointed step's agent is not called again, on
``retry`` its new generation runs exactly once. The client, left without an answer, repeats
its request with the same ``Idempotency-Key`` and gets the first answer replayed.

Agent calls are counted in the drill log (``tests.drills.agents``), written with ``fsync``
by the agents themselves, so a call made by the killed process is never missed. Server A's
embedded worker may claim the resumed work in the instant between the commit and the kill
(it is woken by the commit); its agent calls after the first never return
(``PODIUM_DRILL_HOLD_AFTER=1``), so whatever A started then dies with it, unfinished, and
the resumed work is finished by B in every interleaving.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from podium.domain.definition import parse_definition
from podium.engine.launcher import launch
from podium.storage.approvals import ApprovalRecord
from podium.storage.checkpoints import FAULT_AFTER_DECISION
from podium.storage.store import SqlStore
from tests.drills.agents import HOLD_ENV, Rec
from tests.drills.harness import Fleet, WorkerProc
from tests.support import wait_for, wait_terminal

pytestmark = [pytest.mark.timeout(120)]

GATED = """
metadata: {name: decision-crash, version: 1.0.0}
orchestration:
  steps:
    - id: draft
      agent: drill-work
      input: {seconds: 0, text: first draft}
      checkpoint_after:
        question: "Publish draft {{ steps.draft.output.nonce }}?"
        options: [continue, retry, abort]
    - id: publish
      agent: drill-work
      depends_on: [draft]
      input: {seconds: 0, up: "{{ steps.draft.output.nonce }}"}
"""
ORG = {"PODIUM_ORG": "acme"}  # the organization of the local (keyless) API caller
# killed right after the decision commits; any agent call after the first one hangs
DOOMED = {"PODIUM_FAULT": FAULT_AFTER_DECISION, HOLD_ENV: "1"}


def decision_url(server: WorkerProc, approval_id: str) -> str:
    return f"{server.api_url}/api/orchestrations/approvals/{approval_id}/decision"


async def at_checkpoint(store: SqlStore, run_id: str) -> ApprovalRecord:
    await wait_for(lambda: store.get_run(run_id).status, lambda s: s == "checkpoint", timeout=30)
    (approval,) = store.pending_approvals(run_id)
    return approval


async def decide_and_die(server: WorkerProc, approval_id: str, body: dict[str, Any]) -> None:
    """POST the decision to ``server`` (started with the fault hook): it commits, then dies
    before answering."""
    async with httpx.AsyncClient(timeout=30) as client:
        with pytest.raises(httpx.TransportError):
            await client.post(
                decision_url(server, approval_id), json=body, headers={"Idempotency-Key": "k-1"}
            )
    assert server.wait_exit(timeout=30) == -9, server.stderr()


async def replayed(server: WorkerProc, approval_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """The same request again, to the surviving server: the first answer, replayed."""
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            decision_url(server, approval_id), json=body, headers={"Idempotency-Key": "k-1"}
        )
    assert response.status_code == 200, response.text
    assert response.headers.get("Idempotent-Replayed") == "true"
    answer: dict[str, Any] = response.json()
    return answer


def starts(records: list[Rec], step_id: str) -> Counter[str]:
    """Agent calls of ``step_id`` per idempotency key (one key per generation)."""
    return Counter(r.key for r in records if r.step_id == step_id and r.phase == "start")


def pids(records: list[Rec], step_id: str, phase: str, key: str | None = None) -> list[int]:
    """The pids of the processes in which ``step_id``'s agent calls (of the generation
    ``key``, if given) reached ``phase``, in order."""
    return [
        r.pid for r in records if r.step_id == step_id and r.phase == phase and key in (None, r.key)
    ]


def resumed_on(records: list[Rec], step_id: str, key: str, a: WorkerProc, b: WorkerProc) -> None:
    """The attempt ``key`` of ``step_id`` returned once, on B; it started on B, after at most
    one start on A (claimed there between the decision's commit and the kill)."""
    assert pids(records, step_id, "end", key) == [b.pid]
    assert pids(records, step_id, "start", key) in ([b.pid], [a.pid, b.pid])


def resolved(store: SqlStore, run_id: str) -> list[dict[str, Any]]:
    return [
        e.data for e in store.events_after(run_id) if e.type == "orchestration.checkpoint.resolved"
    ]


async def test_continue_decided_by_a_process_killed_after_the_commit_resumes_elsewhere(
    db_url: str, tmp_path: Path
) -> None:
    """Server A runs ``draft`` to its checkpoint; ``continue`` is posted to A, which is
    SIGKILLed right after the decision committed. The decision stands (approved by the
    caller, ``draft`` completed with its recorded output); server B finishes the run with
    ``publish`` using that output, and ``draft``'s agent was called exactly once."""
    store = SqlStore.open(db_url)
    try:
        run_id = launch(store, parse_definition(GATED), {}, organization="acme")
        with Fleet(db_url, tmp_path, env=ORG) as fleet:
            a = fleet.start(api=True, env=DOOMED)
            approval = await at_checkpoint(store, run_id)
            body = {"decision": "continue", "note": "ship it"}
            await decide_and_die(a, approval.id, body)

            decided = store.get_approval(approval.id)
            assert (decided.status, decided.decision, decided.decided_by, decided.note) == (
                "approved",
                "continue",
                "anonymous@127.0.0.1",  # the keyless caller on loopback
                "ship it",
            )
            steps = {s.step_id: s for s in store.steps_of(run_id)}
            assert steps["draft"].status == "completed"
            assert steps["draft"].output == approval.step_output
            assert steps["publish"].status in ("queued", "running")  # running: claimed by A

            b = fleet.start(api=True)
            answer = await replayed(b, approval.id, body)
            assert answer["approval"]["approvalId"] == approval.id
            assert answer["approval"]["decision"] == "continue"
            run = await wait_terminal(store, run_id, timeout=60)
            fleet.check_no_unexpected_exit()
            records = fleet.records()
            fleet.stop_all()
        assert run.status == "completed", fleet.stderr()
        assert starts(records, "draft") == {approval.conversation_id: 1}  # not called again
        steps = {s.step_id: s for s in store.steps_of(run_id)}
        publish = steps["publish"]
        resumed_on(records, "publish", f"{run_id}:{publish.id}:{publish.generation}", a, b)
        nonce = approval.step_output["output"]["nonce"]
        assert steps["publish"].output["output"]["input"]["up"] == nonce
        assert [d["decision"] for d in resolved(store, run_id)] == ["continue"]
    finally:
        store.close()


async def test_retry_decided_by_a_process_killed_after_the_commit_runs_once_elsewhere(
    db_url: str, tmp_path: Path
) -> None:
    """As above with ``retry`` and an input change: server B runs ``draft``'s new generation
    exactly once, with the change, up to a new checkpoint; ``continue`` there completes the
    run. The first generation's agent call is not repeated."""
    store = SqlStore.open(db_url)
    try:
        run_id = launch(store, parse_definition(GATED), {}, organization="acme")
        with Fleet(db_url, tmp_path, env=ORG) as fleet:
            a = fleet.start(api=True, env=DOOMED)
            first = await at_checkpoint(store, run_id)
            body = {
                "decision": "retry",
                "modifications": {"input": {"seconds": 0, "text": "second draft"}},
            }
            await decide_and_die(a, first.id, body)
            assert store.get_approval(first.id).status == "approved"
            draft = next(s for s in store.steps_of(run_id) if s.step_id == "draft")
            # pending, or running if A's worker claimed it before the kill
            assert (draft.status in ("pending", "running"), draft.generation) == (True, 2)

            b = fleet.start(api=True)
            assert (await replayed(b, first.id, body))["approval"]["decision"] == "retry"
            second = await at_checkpoint(store, run_id)
            assert second.id != first.id
            assert second.step_output["output"]["input"]["text"] == "second draft"
            async with httpx.AsyncClient(timeout=30) as client:
                response = await client.post(
                    decision_url(b, second.id), json={"decision": "continue"}
                )
            assert response.status_code == 200, response.text
            run = await wait_terminal(store, run_id, timeout=60)
            fleet.check_no_unexpected_exit()
            records = fleet.records()
            fleet.stop_all()
        assert run.status == "completed", fleet.stderr()
        steps = {s.step_id: s for s in store.steps_of(run_id)}
        assert steps["draft"].generation == 2
        # generation 1 ran once, on A, and is not repeated; generation 2 finished on B
        calls = starts(records, "draft")
        assert set(calls) == {first.conversation_id, second.conversation_id}
        assert pids(records, "draft", "end", first.conversation_id) == [a.pid]
        assert calls[first.conversation_id] == 1
        resumed_on(records, "draft", second.conversation_id, a, b)
        nonce = second.step_output["output"]["nonce"]
        assert steps["publish"].output["output"]["input"]["up"] == nonce
        assert [d["decision"] for d in resolved(store, run_id)] == ["retry", "continue"]
    finally:
        store.close()
