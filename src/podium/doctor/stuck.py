"""Runbook section 1: runs stuck in ``planning`` or ``running``.

A run is *stalled* when it wrote no event for longer than ``--stalled-after``; each check
below names one reason a stalled run does not move, with the steps involved. Deadlines are
looked at on every active run, stalled or not, since they act on a clock of their own.
"""

from __future__ import annotations

from datetime import timedelta

from podium.doctor.facts import Facts
from podium.doctor.model import Finding, Fix, Options, age, check, fixer
from podium.storage.diagnostics import ActiveRun, OpenStep
from podium.storage.store import SqlStore

SECTION = 1
MAX_LISTED = 10  # step ids listed in evidence; the count says how many there are
DEADLINE_SOON_SECONDS = 60.0


def _sweep_grace(options: Options) -> float:
    """How long past its expiry a lease may stay before the sweeper is considered absent."""
    return 2 * options.settings.sweep_seconds + 5.0


def _ids(open_steps: list[OpenStep]) -> list[str]:
    return [s.id for s in open_steps[:MAX_LISTED]]


def _run_evidence(run: ActiveRun, options: Options) -> dict[str, object]:
    return {
        "runId": run.id,
        "definition": f"{run.definition_name}@{run.definition_version}",
        "runStatus": run.status,
        "secondsSinceLastEvent": age(options.now, run.last_event_at or run.created_at),
        "stalledAfterSeconds": options.stalled_after,
    }


def _stalled(facts: Facts) -> list[tuple[ActiveRun, list[OpenStep]]]:
    steps = facts.open_steps_of_stalled
    return [(run, steps.get(run.id, [])) for run in facts.stalled_runs]


@check("stuck.no-live-worker", SECTION)
def no_live_worker(facts: Facts, options: Options) -> list[Finding]:
    """Queued steps of a stalled run while no worker heartbeat is within the lease."""
    if facts.workers:
        return []
    out: list[Finding] = []
    for run, open_steps in _stalled(facts):
        queued = [s for s in open_steps if s.status == "queued"]
        if not queued:
            continue
        oldest = min((s.queued_at for s in queued if s.queued_at), default=None)
        out.append(
            Finding(
                check="stuck.no-live-worker",
                section=SECTION,
                severity="error",
                summary=f"run {run.id} has {len(queued)} queued step(s) and no live worker",
                evidence={
                    **_run_evidence(run, options),
                    "queuedSteps": len(queued),
                    "stepRecordIds": _ids(queued),
                    "oldestQueuedSeconds": age(options.now, oldest),
                    "liveWorkers": 0,
                    "setting": {"PODIUM_LEASE_SECONDS": options.settings.lease_seconds},
                },
                fix=Fix(command="podium worker", api=None),
                organization=run.organization_slug,
                run_id=run.id,
            )
        )
    return out


@check("stuck.pending-ready", SECTION)
def pending_ready(facts: Facts, options: Options) -> list[Finding]:
    """Pending steps whose dependencies are all met and whose retry time (if any) passed:
    they should have been queued."""
    out: list[Finding] = []
    for run, open_steps in _stalled(facts):
        ready = [
            s
            for s in open_steps
            if s.status == "pending"
            and s.deps_remaining == 0
            and (s.available_at is None or s.available_at <= options.now)
        ]
        if not ready:
            continue
        out.append(
            Finding(
                check="stuck.pending-ready",
                section=SECTION,
                severity="error",
                summary=f"run {run.id} has {len(ready)} pending step(s) whose dependencies "
                "are met but that were never queued",
                evidence={
                    **_run_evidence(run, options),
                    "steps": [s.step_id for s in ready[:MAX_LISTED]],
                    "stepRecordIds": _ids(ready),
                },
                fix=Fix(
                    command=f"podium doctor --fix --only stuck.pending-ready --run {run.id}",
                    automatic=True,
                ),
                organization=run.organization_slug,
                run_id=run.id,
            )
        )
    return out


@fixer("stuck.pending-ready")
def queue_ready(store: SqlStore, finding: Finding, options: Options) -> int:
    ids = finding.evidence.get("stepRecordIds")
    if finding.run_id is None or not isinstance(ids, list):
        return 0
    return len(store.queue_ready_steps(finding.run_id, [str(i) for i in ids]))


@check("stuck.concurrency-saturated", SECTION)
def concurrency_saturated(facts: Facts, options: Options) -> list[Finding]:
    """``maxParallelSteps`` taken by steps running longer than ``--stalled-after`` while
    other steps wait in the queue."""
    out: list[Finding] = []
    cutoff = options.now - timedelta(seconds=options.stalled_after)
    for run, open_steps in _stalled(facts):
        running = [s for s in open_steps if s.status == "running"]
        queued = [s for s in open_steps if s.status == "queued"]
        long_running = [s for s in running if s.started_at and s.started_at < cutoff]
        if not queued or len(running) < run.max_parallel_steps or not long_running:
            continue
        out.append(
            Finding(
                check="stuck.concurrency-saturated",
                section=SECTION,
                severity="warning",
                summary=f"run {run.id}: maxParallelSteps={run.max_parallel_steps} is taken by "
                f"{len(long_running)} long-running step(s); {len(queued)} step(s) wait",
                evidence={
                    **_run_evidence(run, options),
                    "maxParallelSteps": run.max_parallel_steps,
                    "running": {s.step_id: age(options.now, s.started_at) for s in running},
                    "queuedSteps": [s.step_id for s in queued[:MAX_LISTED]],
                    "setting": "execution.concurrency.maxParallelSteps",
                },
                fix=Fix(
                    command=f"raise execution.concurrency.maxParallelSteps in definition "
                    f"{run.definition_name} above {run.max_parallel_steps}, then "
                    "`podium definitions push FILE --activate` and launch again "
                    f"(`podium abort {run.id}` ends this run)",
                    api=f"PUT /api/orchestrations/definitions/{run.definition_name}",
                ),
                organization=run.organization_slug,
                run_id=run.id,
            )
        )
    return out


@check("stuck.expired-lease", SECTION)
def expired_lease(facts: Facts, options: Options) -> list[Finding]:
    """Running steps whose lease expired long ago: no sweeper (a worker) took them back."""
    out: list[Finding] = []
    cutoff = options.now - timedelta(seconds=_sweep_grace(options))
    for run, open_steps in _stalled(facts):
        expired = [
            s
            for s in open_steps
            if s.status == "running" and s.lease_expires_at and s.lease_expires_at < cutoff
        ]
        if not expired:
            continue
        out.append(
            Finding(
                check="stuck.expired-lease",
                section=SECTION,
                severity="error",
                summary=f"run {run.id} has {len(expired)} running step(s) whose lease expired "
                "and was not swept (is any worker running?)",
                evidence={
                    **_run_evidence(run, options),
                    "leases": {
                        s.id: {
                            "step": s.step_id,
                            "owner": s.lease_owner,
                            "expiredSecondsAgo": age(options.now, s.lease_expires_at),
                        }
                        for s in expired[:MAX_LISTED]
                    },
                    "liveWorkers": len(facts.workers),
                    "setting": {"PODIUM_SWEEP_SECONDS": options.settings.sweep_seconds},
                },
                fix=Fix(
                    command="podium doctor --fix --only stuck.expired-lease "
                    "(or start `podium worker`: its sweeper takes them back)",
                    automatic=True,
                ),
                organization=run.organization_slug,
                run_id=run.id,
            )
        )
    return out


@fixer("stuck.expired-lease")
def sweep(store: SqlStore, finding: Finding, options: Options) -> int:
    """The sweeper's own compare-and-set (lease still expired, claim token unchanged)."""
    return len(store.reclaim_expired(max_recoveries=options.settings.max_recoveries))


@check("stuck.retry-wait", SECTION)
def retry_wait(facts: Facts, options: Options) -> list[Finding]:
    """A stalled run waiting for a step's ``nextRetryAt``: nothing is wrong, it is waiting."""
    out: list[Finding] = []
    for run, open_steps in _stalled(facts):
        waiting = [
            s
            for s in open_steps
            if s.status == "pending" and s.available_at and s.available_at > options.now
        ]
        if not waiting:
            continue
        first = min(waiting, key=lambda s: s.available_at or options.now)
        assert first.available_at is not None
        out.append(
            Finding(
                check="stuck.retry-wait",
                section=SECTION,
                severity="info",
                summary=f"run {run.id} waits for the retry of step {first.step_id} "
                f"at {first.available_at.isoformat()}",
                evidence={
                    **_run_evidence(run, options),
                    "step": first.step_id,
                    "stepRecordId": first.id,
                    "attempt": first.attempt,
                    "nextRetryAt": first.available_at.isoformat(),
                    "secondsUntilRetry": -(age(options.now, first.available_at) or 0.0),
                },
                fix=None,
                organization=run.organization_slug,
                run_id=run.id,
            )
        )
    return out


@check("stuck.deadline", SECTION)
def deadline(facts: Facts, options: Options) -> list[Finding]:
    """Active runs whose deadline passes within a minute, or passed and was not enforced."""
    out: list[Finding] = []
    soon = options.now + timedelta(seconds=DEADLINE_SOON_SECONDS)
    overdue = options.now - timedelta(seconds=_sweep_grace(options))
    for run in facts.active_runs:
        if run.deadline_at is None or run.deadline_at > soon:
            continue
        passed = run.deadline_at < overdue
        out.append(
            Finding(
                check="stuck.deadline",
                section=SECTION,
                severity="error" if passed else "warning",
                summary=f"run {run.id}: its deadline "
                + ("passed and was not enforced" if passed else "passes within a minute"),
                evidence={
                    **_run_evidence(run, options),
                    "deadlineAt": run.deadline_at.isoformat(),
                    "secondsToDeadline": -(age(options.now, run.deadline_at) or 0.0),
                },
                fix=Fix(command="podium doctor --fix --only stuck.deadline", automatic=True)
                if passed
                else Fix(command=f"podium runs show {run.id}"),
                organization=run.organization_slug,
                run_id=run.id,
            )
        )
    return out


@fixer("stuck.deadline")
def enforce(store: SqlStore, finding: Finding, options: Options) -> int:
    """The sweeper's deadline enforcement (it fails only runs still active past it)."""
    if finding.severity != "error":
        return 0
    return len(store.enforce_deadlines())
