"""Runbook section 3: sub-orchestration failures.

"Child run is failed or aborted, but parent run remains running" cannot last in Podium: every
worker's child watch settles the parent step when the child ends (within two ticks, S1). A
parent still waiting long after its child ended means no worker is running; a child still
active under an ended parent means an abort did not reach it.
"""

from __future__ import annotations

from datetime import timedelta

from podium.doctor.facts import Facts
from podium.doctor.model import Finding, Fix, Options, age, check, fixer
from podium.storage import diagnostics_links as q
from podium.storage.child_runs import ChildRuns
from podium.storage.store import SqlStore

SECTION = 3
# the child watch ticks every PODIUM_POLL_SECONDS: past this nothing is settling parents
WAITING_AFTER_SECONDS = 30.0


@check("children.parent-waiting", SECTION)
def parent_waiting(facts: Facts, options: Options) -> list[Finding]:
    """Parent steps still ``running`` although their child run ended."""
    before = options.now - timedelta(seconds=WAITING_AFTER_SECONDS)
    return [
        Finding(
            check="children.parent-waiting",
            section=SECTION,
            severity="error",
            summary=f"run {r['run_id']}: step {r['step_id']} still waits for child run "
            f"{r['child_id']}, which is {r['child_status']}",
            evidence={
                "runId": r["run_id"],
                "stepId": r["step_id"],
                "stepRecordId": r["id"],
                "childRunId": r["child_id"],
                "childStatus": r["child_status"],
                "endedSecondsAgo": age(options.now, r["ended_at"]),
            },
            fix=Fix(
                command=f"podium doctor --fix --only children.parent-waiting --run {r['run_id']}"
                " (or start a worker: podium worker)",
                automatic=True,
            ),
            organization=r["organization_slug"],
            run_id=r["run_id"],
        )
        for r in facts.read(q.parents_waiting_on_ended_children, before=before)
    ]


@fixer("children.parent-waiting")
def settle_parents(store: SqlStore, finding: Finding, options: Options) -> int:
    """What every worker's child watch does: settle each parent step whose child ended
    (guarded by the step's status and generation)."""
    return len(ChildRuns(store).settle_ended())


@check("children.orphaned", SECTION)
def orphaned(facts: Facts, options: Options) -> list[Finding]:
    """Children still active under a parent run that ended."""
    return [
        Finding(
            check="children.orphaned",
            section=SECTION,
            severity="warning",
            summary=f"child run {r['id']} is {r['status']} under parent {r['parent_id']}, "
            f"which is {r['parent_status']}",
            evidence={
                "childRunId": r["id"],
                "childStatus": r["status"],
                "parentRunId": r["parent_id"],
                "parentStatus": r["parent_status"],
            },
            fix=Fix(
                command=f"podium abort {r['id']} --note 'parent {r['parent_id']} ended'",
                api=f"POST /api/orchestrations/{r['id']}/actions/abort",
            ),
            organization=r["organization_slug"],
            run_id=r["id"],
        )
        for r in facts.read(q.children_of_ended_parents)
    ]
