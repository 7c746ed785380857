"""Read-only queries behind the doctor's checks of checkpoints, child runs and webhooks
(runbook sections 2, 3 and 6). Each returns plain rows; the checks judge them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from podium.storage.tables import (
    approvals,
    runs,
    steps,
    webhook_deliveries,
    webhook_endpoints,
)

TERMINAL = ("completed", "failed", "aborted")
LIMIT = 1_000


@dataclass(frozen=True)
class Row:
    """One row of a diagnostics query, its columns by name."""

    values: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.values[key]


def _rows(conn: sa.Connection, query: sa.Select[Any]) -> list[Row]:
    return [Row(dict(r)) for r in conn.execute(query.limit(LIMIT)).mappings()]


def _org(column: sa.ColumnElement[Any], organization: str | None) -> list[sa.ColumnElement[bool]]:
    return [] if organization is None else [column == organization]


def checkpoints_without_approval(conn: sa.Connection, organization: str | None) -> list[Row]:
    """``checkpoint_pending`` steps with no pending approval row."""
    pending = (
        sa.select(approvals.c.id)
        .where(approvals.c.step_record_id == steps.c.id, approvals.c.status == "pending")
        .exists()
    )
    query = (
        sa.select(
            steps.c.id,
            steps.c.step_id,
            steps.c.run_id,
            steps.c.updated_at,
            runs.c.organization_slug,
        )
        .join(runs, runs.c.id == steps.c.run_id)
        .where(
            steps.c.status == "checkpoint_pending",
            ~pending,
            *_org(runs.c.organization_slug, organization),
        )
    )
    return _rows(conn, query)


def approvals_of_other_organizations(conn: sa.Connection, organization: str | None) -> list[Row]:
    """Approvals whose organization differs from their run's."""
    query = (
        sa.select(
            approvals.c.id,
            approvals.c.run_id,
            approvals.c.organization_slug,
            runs.c.organization_slug.label("run_organization"),
        )
        .join(runs, runs.c.id == approvals.c.run_id)
        .where(
            approvals.c.organization_slug != runs.c.organization_slug,
            *_org(runs.c.organization_slug, organization),
        )
    )
    return _rows(conn, query)


def overdue_approvals(conn: sa.Connection, organization: str | None, before: datetime) -> list[Row]:
    """Pending approvals that expired before ``before`` and were not applied."""
    query = sa.select(
        approvals.c.id,
        approvals.c.run_id,
        approvals.c.expires_at,
        approvals.c.on_timeout,
        approvals.c.organization_slug,
    ).where(
        approvals.c.status == "pending",
        approvals.c.expires_at < before,
        *_org(approvals.c.organization_slug, organization),
    )
    return _rows(conn, query)


def pending_approvals_of_ended_runs(conn: sa.Connection, organization: str | None) -> list[Row]:
    query = (
        sa.select(approvals.c.id, approvals.c.run_id, runs.c.status, approvals.c.organization_slug)
        .join(runs, runs.c.id == approvals.c.run_id)
        .where(
            approvals.c.status == "pending",
            runs.c.status.in_(TERMINAL),
            *_org(approvals.c.organization_slug, organization),
        )
    )
    return _rows(conn, query)


def parents_waiting_on_ended_children(
    conn: sa.Connection, organization: str | None, before: datetime
) -> list[Row]:
    """Parent steps still ``running`` whose child run ended before ``before``."""
    child = runs.alias("child")
    parent = runs.alias("parent")
    query = (
        sa.select(
            steps.c.id,
            steps.c.step_id,
            steps.c.run_id,
            child.c.id.label("child_id"),
            child.c.status.label("child_status"),
            child.c.ended_at,
            parent.c.organization_slug,
        )
        .join(child, child.c.parent_step_record_id == steps.c.id)
        .join(parent, parent.c.id == steps.c.run_id)
        .where(
            steps.c.status == "running",
            steps.c.type == "orchestration",
            child.c.status.in_(TERMINAL),
            child.c.ended_at < before,
            child.c.parent_generation == steps.c.generation,
            *_org(parent.c.organization_slug, organization),
        )
    )
    return _rows(conn, query)


def children_of_ended_parents(conn: sa.Connection, organization: str | None) -> list[Row]:
    child = runs.alias("child")
    parent = runs.alias("parent")
    query = (
        sa.select(
            child.c.id,
            child.c.status,
            parent.c.id.label("parent_id"),
            parent.c.status.label("parent_status"),
            child.c.organization_slug,
        )
        .join(parent, parent.c.id == child.c.parent_run_id)
        .where(
            child.c.status.not_in(TERMINAL),
            parent.c.status.in_(TERMINAL),
            *_org(child.c.organization_slug, organization),
        )
    )
    return _rows(conn, query)


def webhook_endpoint_health(conn: sa.Connection, organization: str | None) -> list[Row]:
    """Each endpoint with its dead, failing and pending counts and oldest pending delivery."""
    d = webhook_deliveries
    counts = (
        sa.select(
            d.c.endpoint_id,
            sa.func.sum(sa.case((d.c.status == "dead", 1), else_=0)).label("dead"),
            sa.func.sum(sa.case((d.c.status == "failed", 1), else_=0)).label("failing"),
            sa.func.min(sa.case((d.c.status.in_(("pending", "failed")), d.c.created_at))).label(
                "oldest_pending"
            ),
        )
        .group_by(d.c.endpoint_id)
        .subquery()
    )
    e = webhook_endpoints
    query = (
        sa.select(
            e.c.id,
            e.c.url,
            e.c.organization_slug,
            e.c.enabled,
            e.c.disabled_reason,
            e.c.failing_since,
            counts.c.dead,
            counts.c.failing,
            counts.c.oldest_pending,
        )
        .select_from(e.outerjoin(counts, counts.c.endpoint_id == e.c.id))
        .where(*_org(e.c.organization_slug, organization))
    )
    return _rows(conn, query)


def last_webhook_failure(
    conn: sa.Connection, organization: str | None, endpoint_id: str
) -> Row | None:
    """The status code and error of the endpoint's latest failed delivery."""
    d = webhook_deliveries
    found = (
        conn.execute(
            sa.select(d.c.last_status_code, d.c.last_error)
            .where(d.c.endpoint_id == endpoint_id, d.c.status.in_(("failed", "dead")))
            .order_by(d.c.updated_at.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )
    return Row(dict(found)) if found else None
