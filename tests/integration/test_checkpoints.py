"""Human checkpoints (spec section 5, target A2) with a real worker, on both databases."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from podium.agents.base import AgentContext
from podium.agents.registry.resolver import LocalAgents
from podium.domain.definition import parse_definition
from podium.engine.launcher import launch
from podium.errors import Conflict, InvalidInput, NotFound
from podium.storage.approvals import ApprovalRecord
from podium.storage.store import SqlStore
from tests.support import fast_settings, running_worker, wait_for, wait_terminal

DOC = """
metadata: {name: brief, version: 1.0.0}
orchestration:
  steps:
    - {id: side, agent: echo, input: {text: independent}}
    - id: draft
      agent: counted
      input: {text: "draft about {{ parameters.topic }}"}
      checkpoint_after:
        question: "Publish on {{ parameters.topic }}? It says {{ steps.draft.output.said }}"
        options: [continue, retry, abort]
        %(timeout)s
    - {id: publish, agent: counted, depends_on: [draft], input: {text: publish}}
  parameters:
    - {name: topic, type: string, default: tea}
"""


class Calls:
    """A python agent that counts its calls per step and returns what it was given."""

    def __init__(self) -> None:
        self.count: Counter[str] = Counter()
        self.inputs: list[tuple[str, Any]] = []
        self._lock = threading.Lock()

    async def call(self, input: Any, context: AgentContext) -> dict[str, Any]:
        with self._lock:
            self.count[context.step_id] += 1
            self.inputs.append((context.step_id, input))
        return {"said": input.get("text"), "generation": context.generation}


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    s = SqlStore.open(db_url)
    yield s
    s.close()


def doc(timeout: str = "") -> str:
    return DOC % {"timeout": timeout}


def agents(calls: Calls) -> LocalAgents:
    found = LocalAgents()
    found.add_python("counted", calls.call)
    return found


def pending(store: SqlStore, run_id: str) -> list[ApprovalRecord]:
    return store.pending_approvals(run_id)


async def at_checkpoint(store: SqlStore, run_id: str) -> ApprovalRecord:
    await wait_for(lambda: store.get_run(run_id).status, lambda s: s == "checkpoint")
    (approval,) = pending(store, run_id)
    return approval


def statuses(store: SqlStore, run_id: str) -> dict[str, str]:
    return {s.step_id: s.status for s in store.steps_of(run_id)}


def events_of(store: SqlStore, run_id: str, type: str) -> list[Any]:
    return [e for e in store.events_after(run_id) if e.type == type]


async def test_checkpoint_is_created_with_the_output_in_one_transaction(
    store: SqlStore, db_url: str
) -> None:
    """A2: the output, checkpoint_pending, the approval and both events commit together;
    the independent branch keeps running; the run reports checkpoint."""
    calls = Calls()
    run_id = launch(store, parse_definition(doc()), {}, organization="acme")
    async with running_worker(store, fast_settings(db_url), agents(calls)):
        approval = await at_checkpoint(store, run_id)
    assert statuses(store, run_id) == {
        "side": "completed",
        "draft": "checkpoint_pending",
        "publish": "pending",
    }
    draft = next(s for s in store.steps_of(run_id) if s.step_id == "draft")
    assert draft.output["output"] == {"said": "draft about tea", "generation": 1}
    assert approval.step_record_id == draft.id
    assert approval.kind == "checkpoint"
    assert approval.question == "Publish on tea? It says draft about tea"
    assert approval.options == ["continue", "retry", "abort"]
    assert approval.step_output == draft.output
    assert approval.definition_name == "brief"
    assert approval.conversation_id == f"{run_id}:{draft.id}:1"
    log = store.events_after(run_id)
    held = next(e for e in log if e.type == "orchestration.step.checkpoint_pending")
    requested = next(e for e in log if e.type == "orchestration.checkpoint.requested")
    # one transaction: consecutive sequence numbers and the transaction's one timestamp
    assert requested.sequence == held.sequence + 1
    assert requested.timestamp == held.timestamp
    assert held.data["output"] == draft.output
    assert requested.data["approvalId"] == approval.id
    assert not [e for e in log if e.type == "orchestration.step.completed" and e.step_id == "draft"]


async def test_continue_completes_the_step_without_calling_its_agent_again(
    store: SqlStore, db_url: str
) -> None:
    """A2: continue records who, when and why; dependents run; the run completes. The
    decision is taken with no worker running (a crash after the decision's commit): the
    next worker resumes the run and does not call the checkpointed step's agent again."""
    calls = Calls()
    run_id = launch(store, parse_definition(doc()), {}, organization="acme")
    async with running_worker(store, fast_settings(db_url), agents(calls)):
        approval = await at_checkpoint(store, run_id)
    decided = store.decide_approval(
        approval.id, organization="acme", decision="continue", actor="alice", note="looks good"
    )
    assert decided.approval.status == "approved"
    assert decided.approval.decided_by == "alice"
    assert decided.approval.note == "looks good"
    assert decided.approval.decided_at is not None
    assert statuses(store, run_id)["draft"] == "completed"
    async with running_worker(store, fast_settings(db_url), agents(calls)):
        run = await wait_terminal(store, run_id)
    assert run.status == "completed"
    assert calls.count == Counter({"draft": 1, "publish": 1})
    (resolved,) = events_of(store, run_id, "orchestration.checkpoint.resolved")
    assert resolved.data | {"approvalId": approval.id} == {
        "approvalId": approval.id,
        "kind": "checkpoint",
        "decision": "continue",
        "status": "approved",
        "actor": "alice",
        "note": "looks good",
    }


async def test_retry_runs_the_step_again_with_modifications(store: SqlStore, db_url: str) -> None:
    """A2: retry gives the step a new generation with the input changes merged; bad
    modifications are refused before anything changes."""
    calls = Calls()
    run_id = launch(store, parse_definition(doc()), {}, organization="acme")
    async with running_worker(store, fast_settings(db_url), agents(calls)) as _:
        approval = await at_checkpoint(store, run_id)
        before = store.events_after(run_id)
        with pytest.raises(InvalidInput) as bad:
            store.decide_approval(
                approval.id,
                organization="acme",
                decision="retry",
                actor="bob",
                modifications={"input": "not an object", "agentOverrides": {"nope": "echo"}},
            )
        paths = {i.path for i in bad.value.issues}
        assert paths == {"modifications.input", "modifications.agentOverrides.nope"}
        assert store.get_approval(approval.id).status == "pending"
        assert store.events_after(run_id) == before
        store.decide_approval(
            approval.id,
            organization="acme",
            decision="retry",
            actor="bob",
            note="shorter",
            modifications={"input": {"text": "short draft"}},
        )
        second = await wait_for(lambda: pending(store, run_id), lambda p: len(p) == 1)
    assert second[0].id != approval.id
    assert second[0].step_output["output"] == {"said": "short draft", "generation": 2}
    assert [i for s, i in calls.inputs if s == "draft"][-1] == {"text": "short draft"}
    assert store.get_approval(approval.id).modifications == {"input": {"text": "short draft"}}


async def test_abort_decision_aborts_the_run(store: SqlStore, db_url: str) -> None:
    """A2: abort rejects the approval and aborts the run; a second decision is a 409 that
    names the first."""
    run_id = launch(store, parse_definition(doc()), {}, organization="acme")
    async with running_worker(store, fast_settings(db_url), agents(Calls())):
        approval = await at_checkpoint(store, run_id)
        decided = store.decide_approval(
            approval.id, organization="acme", decision="abort", actor="carol", note="wrong"
        )
        assert decided.run_status == "aborted"
        assert (await wait_terminal(store, run_id)).status == "aborted"
    assert store.get_approval(approval.id).status == "rejected"
    with pytest.raises(Conflict) as again:
        store.decide_approval(approval.id, organization="acme", decision="continue", actor="dan")
    assert "abort by carol" in again.value.message
    assert again.value.details["decidedBy"] == "carol"
    assert statuses(store, run_id)["publish"] == "aborted"


async def test_decisions_are_scoped_and_checked(store: SqlStore, db_url: str) -> None:
    """Another organization's approval is not found; an option the checkpoint does not
    offer is a 422."""
    text = doc().replace("options: [continue, retry, abort]", "options: [continue]")
    run_id = launch(store, parse_definition(text), {}, organization="acme")
    async with running_worker(store, fast_settings(db_url), agents(Calls())):
        approval = await at_checkpoint(store, run_id)
    with pytest.raises(NotFound):
        store.decide_approval(approval.id, organization="globex", decision="continue", actor="x")
    assert store.list_approvals("globex") == []
    with pytest.raises(InvalidInput):
        store.decide_approval(approval.id, organization="acme", decision="retry", actor="x")
    assert [a.id for a in store.list_approvals("acme")] == [approval.id]


async def test_fifty_concurrent_decisions_have_one_winner(store: SqlStore, db_url: str) -> None:
    """A2: 50 concurrent decisions: exactly one wins, 49 conflict, the run resumes once."""
    calls = Calls()
    run_id = launch(store, parse_definition(doc()), {}, organization="acme")
    async with running_worker(store, fast_settings(db_url), agents(calls)):
        approval = await at_checkpoint(store, run_id)
        barrier = threading.Barrier(50)

        def decide(i: int) -> str:
            barrier.wait()
            try:
                store.decide_approval(
                    approval.id,
                    organization="acme",
                    decision="continue" if i % 2 else "retry",
                    actor=f"user{i}",
                )
            except Conflict:
                return "409"
            return "200"

        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(max_workers=50) as pool:
            results = await asyncio.gather(
                *(loop.run_in_executor(pool, decide, i) for i in range(50))
            )
        assert Counter(results) == Counter({"200": 1, "409": 49})
        winner = store.get_approval(approval.id)
        if winner.decision == "retry":
            again = await wait_for(lambda: pending(store, run_id), lambda p: len(p) == 1)
            store.decide_approval(again[0].id, organization="acme", decision="continue", actor="z")
        run = await wait_terminal(store, run_id)
    assert run.status == "completed"
    assert calls.count["publish"] == 1
    assert calls.count["draft"] == (2 if winner.decision == "retry" else 1)
    resolved = events_of(store, run_id, "orchestration.checkpoint.resolved")
    assert [e.data["approvalId"] for e in resolved].count(approval.id) == 1


async def test_expiry_applies_on_timeout_within_two_seconds_and_warns_once(
    store: SqlStore, db_url: str
) -> None:
    """A2: onTimeout continue is applied by the sweeper within 2 s of expiresAt, after one
    orchestration.checkpoint.expiring at 80 % of the time."""
    calls = Calls()
    text = doc("timeoutSeconds: 2\n        onTimeout: continue")
    run_id = launch(store, parse_definition(text), {}, organization="acme")
    async with running_worker(store, fast_settings(db_url), agents(calls)):
        approval = await at_checkpoint(store, run_id)
        assert approval.expires_at is not None
        assert approval.expiring_at is not None
        assert approval.expiring_at - approval.created_at == timedelta(seconds=1.6)
        run = await wait_terminal(store, run_id)
    expired = store.get_approval(approval.id)
    assert expired.status == "expired"
    assert expired.decision == "continue"
    assert expired.decided_by == "podium:timeout"
    assert expired.decided_at is not None
    assert expired.decided_at - approval.expires_at < timedelta(seconds=2)
    assert run.status == "completed"
    (warning,) = events_of(store, run_id, "orchestration.checkpoint.expiring")
    (resolved,) = events_of(store, run_id, "orchestration.checkpoint.resolved")
    assert warning.sequence < resolved.sequence
    assert warning.timestamp >= approval.expiring_at
    assert calls.count == Counter({"draft": 1, "publish": 1})


async def test_expiry_with_fail_fails_the_step_and_is_applied_after_downtime(
    store: SqlStore, db_url: str
) -> None:
    """A2: an expiry whose deadline passed while no worker ran is applied when the next
    worker starts; onTimeout fail fails the step with checkpoint_expired."""
    text = doc("timeoutSeconds: 1\n        onTimeout: fail")
    run_id = launch(store, parse_definition(text), {}, organization="acme")
    async with running_worker(store, fast_settings(db_url), agents(Calls())):
        approval = await at_checkpoint(store, run_id)
    assert approval.expires_at is not None
    expires = approval.expires_at
    # no process runs while the deadline passes
    await wait_for(lambda: datetime.now(UTC), lambda now: now > expires)
    assert store.get_approval(approval.id).status == "pending"
    async with running_worker(store, fast_settings(db_url), agents(Calls())):
        run = await wait_terminal(store, run_id, timeout=10)
    assert run.status == "failed"
    draft = next(s for s in store.steps_of(run_id) if s.step_id == "draft")
    assert draft.status == "failed"
    assert draft.error is not None
    assert draft.error["code"] == "checkpoint_expired"
    assert store.get_approval(approval.id).status == "expired"


def race(store: SqlStore, approval_id: str) -> list[str]:
    """A person's continue and the sweeper's expiry, released at the same moment."""
    barrier = threading.Barrier(2)

    def human() -> str:
        barrier.wait()
        try:
            store.decide_approval(
                approval_id, organization="acme", decision="continue", actor="eve"
            )
        except Conflict:
            return "lost"
        return "human"

    def sweeper() -> str:
        barrier.wait()
        return "expiry" if store.expire_approvals() else "lost"

    with ThreadPoolExecutor(max_workers=2) as pool:
        return [f.result() for f in [pool.submit(human), pool.submit(sweeper)]]


async def test_expiry_racing_a_decision_has_exactly_one_outcome(
    store: SqlStore, db_url: str
) -> None:
    """A2: the sweeper and a person deciding at the same moment: one outcome, one event."""
    text = doc("timeoutSeconds: 1\n        onTimeout: abort")
    winners: Counter[str] = Counter()
    for _ in range(3):
        run_id = launch(store, parse_definition(text), {}, organization="acme")
        # a worker that does not sweep on its own during the race (poll_seconds 30)
        settings = fast_settings(db_url, poll_seconds=30.0)
        async with running_worker(store, settings, agents(Calls())):
            approval = await at_checkpoint(store, run_id)
        expires = approval.expires_at
        assert expires is not None
        await wait_for(lambda: datetime.now(UTC), lambda now, at=expires: now > at)
        results = await asyncio.to_thread(race, store, approval.id)
        assert results.count("lost") == 1, results
        winner = next(r for r in results if r != "lost")
        winners[winner] += 1
        final = store.get_approval(approval.id)
        assert final.status == ("approved" if winner == "human" else "expired")
        assert len(events_of(store, run_id, "orchestration.checkpoint.resolved")) == 1
        assert store.get_run(run_id).status == ("aborted" if winner == "expiry" else "running")
        if winner == "human":
            store.abort(run_id, actor="test")
    assert sum(winners.values()) == 3


async def test_aborting_the_run_expires_its_approvals(store: SqlStore, db_url: str) -> None:
    """Abort of a run expires its pending approvals, with the reason."""
    run_id = launch(store, parse_definition(doc()), {}, organization="acme")
    async with running_worker(store, fast_settings(db_url), agents(Calls())):
        approval = await at_checkpoint(store, run_id)
        store.abort(run_id, actor="ops", reason="customer cancelled")
    expired = store.get_approval(approval.id)
    assert expired.status == "expired"
    assert expired.decided_by == "ops"
    assert expired.note == "run aborted: customer cancelled"
    (resolved,) = events_of(store, run_id, "orchestration.checkpoint.resolved")
    assert resolved.data["status"] == "expired"
    assert store.pending_approvals(run_id) == []
