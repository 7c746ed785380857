"""indexes for the runs list: one organization's runs newest first, by status or not, and a
run's children newest first

Without them, the list (``ORDER BY id DESC LIMIT n`` within an organization) sorted every run
of the organization to return one page: 60 ms at 10,000 runs on SQLite, growing with them.
``ix_runs_parent`` gains ``id``: with only ``parent_run_id`` in it, SQLite (which keeps no
statistics) would rather read a run's children through ``ix_runs_org_id``, in order, over
every run of the organization.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_runs_org_id", "orchestration_runs", ["organization_slug", "id"])
    op.create_index(
        "ix_runs_org_status_id", "orchestration_runs", ["organization_slug", "status", "id"]
    )
    op.drop_index("ix_runs_parent", table_name="orchestration_runs")
    op.create_index("ix_runs_parent", "orchestration_runs", ["parent_run_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_runs_parent", table_name="orchestration_runs")
    op.create_index("ix_runs_parent", "orchestration_runs", ["parent_run_id"])
    op.drop_index("ix_runs_org_status_id", table_name="orchestration_runs")
    op.drop_index("ix_runs_org_id", table_name="orchestration_runs")
