"""Runbook section 1 (stuck runs): each reason produced for real or injected, on both
databases; the finding's evidence and fix; the fix, applied, resolves it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from podium.doctor.runner import apply_fixes
from podium.engine.launcher import launch
from podium.settings import Settings
from podium.storage.store import SqlStore
from podium.storage.tables import runs, steps
from tests.doctor.conftest import execute, findings, options, run_checks
from tests.support import definition, running_worker, wait_terminal

CHAIN = """
metadata: {name: chain, version: 1.0.0}
orchestration:
  steps:
    - {id: one, agent: echo, input: {text: a}}
    - {id: two, agent: echo, depends_on: [one], input: {text: b}}
"""

PAIR = """
metadata: {name: pair, version: 1.0.0}
orchestration:
  execution: {concurrency: {maxParallelSteps: 1}}
  steps:
    - {id: left, agent: echo, input: {text: a}}
    - {id: right, agent: echo, input: {text: b}}
"""

DEADLINE = """
metadata: {name: hurried, version: 1.0.0}
orchestration:
  execution: {timeoutSeconds: 30}
  steps:
    - {id: one, agent: echo, input: {text: a}}
"""

TEN_MINUTES = 600.0


def _launch(store: SqlStore, doc: str) -> str:
    return launch(store, definition(doc), {}, organization="acme")


async def test_queued_steps_without_a_live_worker(store: SqlStore, settings: Settings) -> None:
    """A run whose steps are queued while no worker runs is stuck; `podium worker` ends it."""
    run_id = _launch(store, CHAIN)
    assert findings(store, settings, "stuck.no-live-worker") == []  # not stalled yet
    [found] = findings(store, settings, "stuck.no-live-worker", later=TEN_MINUTES)
    assert found.severity == "error"
    assert found.run_id == run_id
    assert found.evidence["queuedSteps"] == 1
    assert found.evidence["liveWorkers"] == 0
    assert found.evidence["secondsSinceLastEvent"] >= TEN_MINUTES - 5
    assert found.fix is not None
    assert found.fix.command == "podium worker"
    async with running_worker(store, settings):
        assert (await wait_terminal(store, run_id)).status == "completed"
    assert findings(store, settings, "stuck.no-live-worker", later=TEN_MINUTES) == []


def test_pending_step_with_its_dependencies_met(store: SqlStore, settings: Settings) -> None:
    """A pending step with no dependency left was never queued; --fix queues it (a
    compare-and-set recorded as an event) and a second --fix finds nothing."""
    run_id = _launch(store, CHAIN)
    root = next(s for s in store.steps_of(run_id) if s.step_id == "one")
    execute(store, sa.update(steps).where(steps.c.id == root.id).values(status="pending"))
    [found] = findings(store, settings, "stuck.pending-ready", later=TEN_MINUTES)
    assert found.evidence["steps"] == ["one"]
    assert found.evidence["stepRecordIds"] == [root.id]
    assert found.fix is not None
    assert found.fix.automatic
    assert found.fix.command == f"podium doctor --fix --only stuck.pending-ready --run {run_id}"

    opts = options(settings, later=TEN_MINUTES)
    report = run_checks(store, settings, ["stuck.pending-ready"], later=TEN_MINUTES)
    [applied] = apply_fixes(store, report, opts)
    assert applied.changed == 1
    assert store.get_step(root.id).status == "queued"
    queued = [e for e in store.events_after(run_id) if e.step_record_id == root.id]
    assert queued[-1].type == "orchestration.step.queued"
    assert "doctor" in queued[-1].data["reason"]
    # the same fix again (on what was observed before) changes nothing
    assert [a.changed for a in apply_fixes(store, report, opts)] == [0]
    assert findings(store, settings, "stuck.pending-ready", later=TEN_MINUTES) == []


def test_max_parallel_steps_saturated(store: SqlStore, settings: Settings) -> None:
    """maxParallelSteps=1 held by a step running for long while another waits."""
    run_id = _launch(store, PAIR)
    store.register_worker("w-long", 4)
    [claimed] = store.claim(worker_id="w-long", capacity=4, lease_seconds=3600)
    [found] = findings(store, settings, "stuck.concurrency-saturated", later=TEN_MINUTES)
    assert found.severity == "warning"
    assert found.run_id == run_id
    assert found.evidence["maxParallelSteps"] == 1
    assert list(found.evidence["running"]) == [claimed.step_id]
    assert len(found.evidence["queuedSteps"]) == 1
    assert found.fix is not None
    assert "maxParallelSteps in definition pair above 1" in found.fix.command
    # looking now, the run is not stalled and its step has not run for long
    assert findings(store, settings, "stuck.concurrency-saturated") == []
    # the fix: a definition with more room, this run aborted, a new one launched
    store.abort(run_id, actor="ops")
    wider = PAIR.replace("version: 1.0.0", "version: 1.1.0").replace(
        "maxParallelSteps: 1", "maxParallelSteps: 2"
    )
    relaunched = _launch(store, wider)
    assert len(store.claim(worker_id="w-long", capacity=4, lease_seconds=3600)) == 2
    assert findings(store, settings, "stuck.concurrency-saturated", later=TEN_MINUTES) == []
    assert store.get_run(relaunched).status == "running"


def test_expired_lease_not_swept(store: SqlStore, settings: Settings) -> None:
    """A running step whose lease expired long ago and no sweeper; --fix sweeps it."""
    run_id = _launch(store, CHAIN)
    [claimed] = store.claim(worker_id="w-dead", capacity=4, lease_seconds=30)
    # its worker died an hour ago (the lease ran out) and no worker has swept since
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    execute(
        store,
        sa.update(steps)
        .where(steps.c.id == claimed.step_record_id)
        .values(lease_expires_at=an_hour_ago),
    )
    [found] = findings(store, settings, "stuck.expired-lease", later=TEN_MINUTES)
    assert found.severity == "error"
    assert found.run_id == run_id
    lease = found.evidence["leases"][claimed.step_record_id]
    assert lease["owner"] == "w-dead"
    assert lease["expiredSecondsAgo"] > 3600
    report = run_checks(store, settings, ["stuck.expired-lease"], later=TEN_MINUTES)
    [applied] = apply_fixes(store, report, options(settings, later=TEN_MINUTES))
    assert applied.changed == 1
    assert store.get_step(claimed.step_record_id).status == "queued"
    assert [a.changed for a in apply_fixes(store, report, options(settings))] == [0]
    assert findings(store, settings, "stuck.expired-lease", later=TEN_MINUTES) == []


def test_retry_waiting_for_next_retry_at(store: SqlStore, settings: Settings) -> None:
    """A stalled run waiting for nextRetryAt is explained as info (exit code 0)."""
    run_id = _launch(store, CHAIN)
    retry_at = datetime.now(UTC) + timedelta(hours=2)
    execute(
        store,
        sa.update(steps)
        .where(steps.c.run_id == run_id, steps.c.step_id == "one")
        .values(status="pending", available_at=retry_at, attempt=1),
    )
    report = run_checks(store, settings, ["stuck"], later=TEN_MINUTES)
    [found] = report.findings
    assert found.check == "stuck.retry-wait"
    assert found.severity == "info"
    assert found.evidence["nextRetryAt"] == retry_at.isoformat()
    assert found.evidence["attempt"] == 1
    assert report.exit_code == 0


async def test_run_deadline(store: SqlStore, settings: Settings) -> None:
    """A deadline about to pass is a warning; passed and not enforced, an error that
    --fix enforces (the run fails with run_timeout)."""
    run_id = _launch(store, DEADLINE)
    [soon] = findings(store, settings, "stuck.deadline")
    assert soon.severity == "warning"
    assert soon.run_id == run_id
    assert soon.fix is not None
    assert soon.fix.command == f"podium runs show {run_id}"
    # the deadline passed an hour ago and no sweeper enforced it
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    execute(store, sa.update(runs).where(runs.c.id == run_id).values(deadline_at=an_hour_ago))
    [passed] = findings(store, settings, "stuck.deadline")
    assert passed.severity == "error"
    assert passed.evidence["secondsToDeadline"] < -3500
    assert passed.fix is not None
    assert passed.fix.automatic
    report = run_checks(store, settings, ["stuck.deadline"])
    [applied] = apply_fixes(store, report, options(settings))
    assert applied.changed == 1
    run = store.get_run(run_id)
    assert run.status == "failed"
    assert run.error is not None
    assert [a.changed for a in apply_fixes(store, report, options(settings))] == [0]
    assert findings(store, settings, "stuck.deadline") == []
