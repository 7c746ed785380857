"""The doctor's checks of runbook sections 2 (checkpoints), 3 (child runs) and 6 (webhooks),
each with its symptom produced for real or injected, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from podium.doctor.runner import apply_fixes
from podium.domain.definition import parse_definition
from podium.engine.launcher import launch
from podium.events.webhooks.signing import new_secret
from podium.settings import Settings
from podium.storage.store import SqlStore
from podium.storage.tables import approvals, runs, webhook_deliveries, webhook_endpoints
from tests.doctor.conftest import execute, findings, options, run_checks
from tests.support import running_worker, wait_for

CHECKPOINTED = """
metadata: {name: reviewed, version: 1.0.0}
orchestration:
  steps:
    - id: draft
      agent: echo
      input: {text: "a draft"}
      checkpoint_after: {question: "Publish?", options: [continue, retry, abort]}
    - {id: publish, agent: echo, depends_on: [draft], input: {text: published}}
"""

CHILD = """
metadata: {name: child, version: 1.0.0}
orchestration:
  steps:
    - {id: slow, agent: sleep, input: {seconds: 30}}
"""

PARENT = """
metadata: {name: parent, version: 1.0.0}
orchestration:
  steps:
    - id: sub
      type: orchestration
      orchestration: {name: child, version: "^1", parameters: {}}
"""


async def at_checkpoint(store: SqlStore, settings: Settings) -> str:
    run_id = launch(store, parse_definition(CHECKPOINTED), {}, organization="acme")
    async with running_worker(store, settings):
        await wait_for(lambda: store.get_run(run_id).status, lambda s: s == "checkpoint")
    return run_id


async def test_a_checkpoint_pending_step_without_its_approval(
    store: SqlStore, settings: Settings
) -> None:
    run_id = await at_checkpoint(store, settings)
    execute(store, sa.delete(approvals).where(approvals.c.run_id == run_id))
    [found] = findings(store, settings, "checkpoints.missing-approval")
    draft = next(s for s in store.steps_of(run_id) if s.step_id == "draft")
    assert found.evidence["stepRecordId"] == draft.id
    assert found.severity == "error"
    assert found.fix is not None
    assert f"podium skip {run_id} --step {draft.id}" in found.fix.command
    store.skip(run_id, actor="ops", step_record_id=draft.id)  # what the command does
    assert findings(store, settings, "checkpoints.missing-approval") == []


async def test_an_approval_filed_under_another_organization(
    store: SqlStore, settings: Settings
) -> None:
    run_id = await at_checkpoint(store, settings)
    execute(store, sa.update(approvals).values(organization_slug="globex"))
    [found] = findings(store, settings, "checkpoints.organization-mismatch")
    assert found.evidence["approvalOrganization"] == "globex"
    assert found.evidence["runOrganization"] == "acme"
    assert found.run_id == run_id


async def test_an_overdue_expiry_is_applied_by_fix_once(
    store: SqlStore, settings: Settings
) -> None:
    run_id = await at_checkpoint(store, settings)
    past = datetime.now(UTC) - timedelta(hours=1)
    execute(store, sa.update(approvals).values(expires_at=past))
    [found] = findings(store, settings, "checkpoints.overdue")
    assert found.fix is not None
    assert found.fix.automatic
    assert found.fix.command.startswith("podium doctor --fix --only checkpoints.overdue")
    report = run_checks(store, settings, ["checkpoints.overdue"])
    [applied] = apply_fixes(store, report, options(settings))
    assert applied.changed == 1
    assert store.pending_approvals(run_id) == []
    assert [a.changed for a in apply_fixes(store, report, options(settings))] == [0]
    assert findings(store, settings, "checkpoints.overdue") == []


async def test_a_pending_approval_on_an_ended_run(store: SqlStore, settings: Settings) -> None:
    run_id = await at_checkpoint(store, settings)
    execute(store, sa.update(runs).where(runs.c.id == run_id).values(status="completed"))
    [found] = findings(store, settings, "checkpoints.on-ended-run")
    assert found.evidence["runStatus"] == "completed"
    assert found.fix is not None
    assert found.fix.command.startswith("podium approvals abort")


async def parent_with_running_child(store: SqlStore, settings: Settings) -> tuple[str, str]:
    for doc in (CHILD, PARENT):
        store.push_definition("acme", parse_definition(doc), status="active")
    parent = launch(store, parse_definition(PARENT), {}, organization="acme")
    async with running_worker(store, settings):
        children = await wait_for(
            lambda: store.list_runs(parent_run_id=parent, organization="acme"),
            lambda found: len(found) == 1,
        )
    return parent, children[0].id


async def test_a_parent_left_waiting_on_an_ended_child_is_settled_by_fix(
    store: SqlStore, settings: Settings
) -> None:
    """Runbook section 3's symptom, with no worker to settle it: the fix does."""
    parent, child = await parent_with_running_child(store, settings)
    store.abort(child, actor="ops", reason="test")
    [found] = findings(store, settings, "children.parent-waiting", later=120)
    assert found.evidence["childRunId"] == child
    assert found.evidence["childStatus"] == "aborted"
    report = run_checks(store, settings, ["children.parent-waiting"], later=120)
    [applied] = apply_fixes(store, report, options(settings, later=120))
    assert applied.changed == 1
    sub = next(s for s in store.steps_of(parent) if s.step_id == "sub")
    assert sub.status == "failed"
    assert (sub.error or {}).get("code") == "child_orchestration_aborted"
    assert findings(store, settings, "children.parent-waiting", later=120) == []


async def test_a_child_running_under_an_ended_parent(store: SqlStore, settings: Settings) -> None:
    parent, child = await parent_with_running_child(store, settings)
    execute(store, sa.update(runs).where(runs.c.id == parent).values(status="failed"))
    [found] = findings(store, settings, "children.orphaned")
    assert found.evidence["childRunId"] == child
    assert found.fix is not None
    assert found.fix.command.startswith(f"podium abort {child}")
    store.abort(child, actor="ops")
    assert findings(store, settings, "children.orphaned") == []


def test_dead_letters_disabled_endpoints_and_outbox_lag(
    store: SqlStore, settings: Settings
) -> None:
    endpoint = store.webhooks.create_endpoint(
        organization="acme", url="https://hooks.example.invalid/podium", secret=new_secret()
    )
    launch(store, parse_definition(CHECKPOINTED), {}, organization="acme")
    [oldest, *rest] = store.webhooks.list_deliveries("acme")
    execute(
        store,
        sa.update(webhook_deliveries)
        .where(webhook_deliveries.c.id == oldest.id)
        .values(status="dead", last_status_code=500, last_error="HTTP 500"),
    )
    [dead] = findings(store, settings, "webhooks.dead-letters")
    assert dead.evidence["deadLetters"] == 1
    assert dead.evidence["lastStatusCode"] == 500
    assert dead.fix is not None
    assert f"podium webhooks replay --endpoint {endpoint.id}" in dead.fix.command
    assert rest  # the run's other events wait to be delivered
    [lag] = findings(store, settings, "webhooks.outbox-lag", later=600)
    assert lag.evidence["oldestPendingSeconds"] >= 600
    assert findings(store, settings, "webhooks.outbox-lag") == []  # fresh: no lag yet
    execute(
        store,
        sa.update(webhook_endpoints).values(enabled=False, disabled_reason="410 Gone"),
    )
    [disabled] = findings(store, settings, "webhooks.disabled")
    assert disabled.severity == "info"
    assert disabled.fix is not None
    assert disabled.fix.command == f"podium webhooks enable {endpoint.id}"


def test_a_healthy_run_gives_no_finding(store: SqlStore, settings: Settings) -> None:
    """A healthy database: none of these checks reports anything."""
    launch(store, parse_definition(CHECKPOINTED), {}, organization="acme")
    names = [
        "checkpoints.missing-approval",
        "checkpoints.organization-mismatch",
        "checkpoints.overdue",
        "checkpoints.on-ended-run",
        "children.parent-waiting",
        "children.orphaned",
        "webhooks.dead-letters",
        "webhooks.failing",
        "webhooks.disabled",
        "webhooks.outbox-lag",
    ]
    assert run_checks(store, settings, names).findings == []
