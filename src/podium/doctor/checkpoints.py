"""Runbook section 2: checkpoint approvals missing from the dashboard.

Podium writes a checkpoint's approval in the same transaction as its ``checkpoint_pending``
step, so a step without one means the database was changed by hand (or by an old version);
the checks below find that, approvals filed under the wrong organization (invisible to the
run's operators), expiries the sweeper has not applied, and approvals left on ended runs.
"""

from __future__ import annotations

from datetime import timedelta

from podium.doctor.facts import Facts
from podium.doctor.model import Finding, Fix, Options, age, check, fixer
from podium.storage import diagnostics_links as q
from podium.storage.store import SqlStore

SECTION = 2
# the sweeper applies an expiry within 2 s (A2); past this it is not running
OVERDUE_AFTER_SECONDS = 10.0


@check("checkpoints.missing-approval", SECTION)
def missing_approval(facts: Facts, options: Options) -> list[Finding]:
    """``checkpoint_pending`` steps with no pending approval: nobody can decide them."""
    return [
        Finding(
            check="checkpoints.missing-approval",
            section=SECTION,
            severity="error",
            summary=f"run {r['run_id']}: step {r['step_id']} waits for a decision, but no "
            "pending approval exists",
            evidence={
                "runId": r["run_id"],
                "stepId": r["step_id"],
                "stepRecordId": r["id"],
                "waitingSeconds": age(options.now, r["updated_at"]),
            },
            fix=Fix(
                command=f"podium skip {r['run_id']} --step {r['id']} (keeps its output) or "
                f"podium abort {r['run_id']}",
                api=f"POST /api/orchestrations/{r['run_id']}/actions/skip "
                f'{{"stepRecordId": "{r["id"]}"}}',
            ),
            organization=r["organization_slug"],
            run_id=r["run_id"],
        )
        for r in facts.read(q.checkpoints_without_approval)
    ]


@check("checkpoints.organization-mismatch", SECTION)
def organization_mismatch(facts: Facts, options: Options) -> list[Finding]:
    """Approvals filed under another organization than their run's: the run's operators
    do not see them in ``GET /api/orchestrations/approvals``."""
    return [
        Finding(
            check="checkpoints.organization-mismatch",
            section=SECTION,
            severity="error",
            summary=f"approval {r['id']} is filed under {r['organization_slug']}, its run "
            f"{r['run_id']} under {r['run_organization']}",
            evidence={
                "approvalId": r["id"],
                "runId": r["run_id"],
                "approvalOrganization": r["organization_slug"],
                "runOrganization": r["run_organization"],
            },
            fix=Fix(
                command=f"decide it with a key of {r['organization_slug']}: podium approvals "
                f"abort {r['id']} --url URL --api-key KEY",
            ),
            organization=r["run_organization"],
            run_id=r["run_id"],
        )
        for r in facts.read(q.approvals_of_other_organizations)
    ]


@check("checkpoints.overdue", SECTION)
def overdue(facts: Facts, options: Options) -> list[Finding]:
    """Pending approvals past their expiry that no sweeper applied (no worker running)."""
    before = options.now - timedelta(seconds=OVERDUE_AFTER_SECONDS)
    return [
        Finding(
            check="checkpoints.overdue",
            section=SECTION,
            severity="warning",
            summary=f"approval {r['id']} expired {age(options.now, r['expires_at'])}s ago and "
            f"its onTimeout ({r['on_timeout']}) was not applied",
            evidence={
                "approvalId": r["id"],
                "runId": r["run_id"],
                "expiresAt": r["expires_at"].isoformat(),
                "onTimeout": r["on_timeout"],
            },
            fix=Fix(
                command=f"podium doctor --fix --only checkpoints.overdue --run {r['run_id']}"
                " (or start a worker: podium worker)",
                automatic=True,
            ),
            organization=r["organization_slug"],
            run_id=r["run_id"],
        )
        for r in facts.read(q.overdue_approvals, before=before)
    ]


@fixer("checkpoints.overdue")
def apply_expiries(store: SqlStore, finding: Finding, options: Options) -> int:
    """The sweeper's own compare-and-set: each expiry is applied once, whatever races it."""
    return len(store.expire_approvals())


@check("checkpoints.on-ended-run", SECTION)
def on_ended_run(facts: Facts, options: Options) -> list[Finding]:
    """Pending approvals of runs that ended: they can no longer move anything."""
    return [
        Finding(
            check="checkpoints.on-ended-run",
            section=SECTION,
            severity="warning",
            summary=f"approval {r['id']} is pending on run {r['run_id']}, which is {r['status']}",
            evidence={"approvalId": r["id"], "runId": r["run_id"], "runStatus": r["status"]},
            fix=Fix(command=f"podium approvals abort {r['id']} --note 'run already {r['status']}'"),
            organization=r["organization_slug"],
            run_id=r["run_id"],
        )
        for r in facts.read(q.pending_approvals_of_ended_runs)
    ]
