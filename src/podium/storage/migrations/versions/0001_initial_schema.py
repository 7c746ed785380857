"""initial schema

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from podium.storage.tables import JSON, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "human_approvals",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_slug", sa.String(length=100), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("step_record_id", sa.String(length=36), nullable=False),
        sa.Column("conversation_id", sa.String(length=100), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("options", JSON, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=True),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("on_timeout", sa.String(length=16), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("human_approvals", schema=None) as batch_op:
        batch_op.create_index(
            "ix_approvals_org_status", ["organization_slug", "status"], unique=False
        )
        batch_op.create_index("ix_approvals_run", ["run_id"], unique=False)

    op.create_table(
        "orchestration_definitions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_slug", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("version_key", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("document", JSON, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("organization_slug", "name", "version", name="uq_definitions_version"),
    )
    with op.batch_alter_table("orchestration_definitions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_definitions_name_status",
            ["organization_slug", "name", "status", "version_key"],
            unique=False,
        )

    op.create_table(
        "orchestration_events",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("organization_slug", sa.String(length=100), nullable=False),
        sa.Column("timestamp", UTCDateTime(), nullable=False),
        sa.Column("step_id", sa.String(length=100), nullable=True),
        sa.Column("step_record_id", sa.String(length=36), nullable=True),
        sa.Column("data", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "sequence", name="uq_events_run_sequence"),
    )
    op.create_table(
        "orchestration_runs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_slug", sa.String(length=100), nullable=False),
        sa.Column("definition_name", sa.String(length=200), nullable=False),
        sa.Column("definition_version", sa.String(length=64), nullable=False),
        sa.Column("snapshot", JSON, nullable=False),
        sa.Column("parameters", JSON, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("max_parallel_steps", sa.Integer(), nullable=False),
        sa.Column("outputs", JSON, nullable=True),
        sa.Column("error", JSON, nullable=True),
        sa.Column("metadata", JSON, nullable=False),
        sa.Column("parent_run_id", sa.String(length=36), nullable=True),
        sa.Column("parent_step_record_id", sa.String(length=36), nullable=True),
        sa.Column("last_sequence", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("deadline_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("orchestration_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_runs_org_created", ["organization_slug", "created_at"], unique=False
        )
        batch_op.create_index("ix_runs_parent", ["parent_run_id"], unique=False)
        batch_op.create_index("ix_runs_status", ["status", "created_at"], unique=False)

    op.create_table(
        "orchestration_workers",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=False),
        sa.Column("stopped_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "orchestration_steps",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("step_id", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("agent", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("input", JSON, nullable=True),
        sa.Column("output", JSON, nullable=True),
        sa.Column("error", JSON, nullable=True),
        sa.Column("attempt", sa.Integer(), server_default="0", nullable=False),
        sa.Column("generation", sa.Integer(), server_default="1", nullable=False),
        sa.Column("recoveries", sa.Integer(), server_default="0", nullable=False),
        sa.Column("deps_remaining", sa.Integer(), server_default="0", nullable=False),
        sa.Column("claim_token", sa.Integer(), server_default="0", nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
        sa.Column("available_at", UTCDateTime(), nullable=True),
        sa.Column("queued_at", UTCDateTime(), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("metadata", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["orchestration_runs.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "step_id", name="uq_steps_run_step"),
    )
    with op.batch_alter_table("orchestration_steps", schema=None) as batch_op:
        batch_op.create_index(
            "ix_steps_claimable", ["status", "queued_at", "position"], unique=False
        )
        batch_op.create_index("ix_steps_lease", ["status", "lease_expires_at"], unique=False)
        batch_op.create_index("ix_steps_retry", ["status", "available_at"], unique=False)
        batch_op.create_index("ix_steps_run_status", ["run_id", "status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("orchestration_steps", schema=None) as batch_op:
        batch_op.drop_index("ix_steps_run_status")
        batch_op.drop_index("ix_steps_retry")
        batch_op.drop_index("ix_steps_lease")
        batch_op.drop_index("ix_steps_claimable")

    op.drop_table("orchestration_steps")
    op.drop_table("orchestration_workers")
    with op.batch_alter_table("orchestration_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_runs_status")
        batch_op.drop_index("ix_runs_parent")
        batch_op.drop_index("ix_runs_org_created")

    op.drop_table("orchestration_runs")
    op.drop_table("orchestration_events")
    with op.batch_alter_table("orchestration_definitions", schema=None) as batch_op:
        batch_op.drop_index("ix_definitions_name_status")

    op.drop_table("orchestration_definitions")
    with op.batch_alter_table("human_approvals", schema=None) as batch_op:
        batch_op.drop_index("ix_approvals_run")
        batch_op.drop_index("ix_approvals_org_status")

    op.drop_table("human_approvals")
