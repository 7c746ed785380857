"""step cache entries, single-flight leases, and the index behind the approvals gauge

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from podium.storage.tables import JSON, UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "orchestration_cache_entries",
        sa.Column("organization_slug", sa.String(length=100), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("definition_name", sa.String(length=200), nullable=False),
        sa.Column("step_id", sa.String(length=100), nullable=False),
        sa.Column("agent", sa.String(length=200), nullable=False),
        sa.Column("output", JSON, nullable=True),
        sa.Column("stored_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("hits", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_hit_at", UTCDateTime(), nullable=True),
        sa.Column("source_run_id", sa.String(length=36), nullable=False),
        sa.Column("source_step_record_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("organization_slug", "fingerprint"),
    )
    op.create_index(
        "ix_cache_entries_step",
        "orchestration_cache_entries",
        ["organization_slug", "definition_name", "step_id"],
    )
    op.create_index("ix_cache_entries_expires", "orchestration_cache_entries", ["expires_at"])
    op.create_table(
        "orchestration_cache_flights",
        sa.Column("organization_slug", sa.String(length=100), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("owner_step_record_id", sa.String(length=36), nullable=False),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("organization_slug", "fingerprint"),
    )
    op.create_index("ix_approvals_status", "human_approvals", ["status"])


def downgrade() -> None:
    op.drop_index("ix_approvals_status", table_name="human_approvals")
    op.drop_table("orchestration_cache_flights")
    op.drop_index("ix_cache_entries_expires", table_name="orchestration_cache_entries")
    op.drop_index("ix_cache_entries_step", table_name="orchestration_cache_entries")
    op.drop_table("orchestration_cache_entries")
