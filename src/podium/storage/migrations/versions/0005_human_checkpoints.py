"""human checkpoints: what an approval shows the reviewer and what was decided

Revision ID: 0005
Revises: 0004

``human_approvals`` existed since 0001 with the bare decision. Checkpoints (spec section 5)
also need the approval's kind (``checkpoint`` or ``input``), the step and definition it
belongs to (inbox filters), the step's output for the reviewer, the agent's question for
kind ``input``, the decision's modifications and response, and the 80 % mark at which
``orchestration.checkpoint.expiring`` is emitted once. Indexes serve the inbox (organization,
status, newest first with a cursor) and the sweeper (due expiries and warnings).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from podium.storage.tables import JSON, UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("human_approvals", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="checkpoint")
        )
        batch_op.add_column(sa.Column("step_id", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("definition_name", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("step_output", JSON, nullable=True))
        batch_op.add_column(sa.Column("details", JSON, nullable=True))
        batch_op.add_column(sa.Column("modifications", JSON, nullable=True))
        batch_op.add_column(sa.Column("response", JSON, nullable=True))
        batch_op.add_column(sa.Column("expiring_at", UTCDateTime(), nullable=True))
        batch_op.add_column(
            sa.Column("expiring_notified", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.create_index(
            "ix_approvals_inbox", ["organization_slug", "status", "created_at", "id"]
        )
        batch_op.create_index("ix_approvals_expiry", ["status", "expires_at"])
        batch_op.create_index(
            "ix_approvals_expiring", ["status", "expiring_notified", "expiring_at"]
        )


def downgrade() -> None:
    with op.batch_alter_table("human_approvals", schema=None) as batch_op:
        batch_op.drop_index("ix_approvals_expiring")
        batch_op.drop_index("ix_approvals_expiry")
        batch_op.drop_index("ix_approvals_inbox")
        for column in (
            "expiring_notified",
            "expiring_at",
            "response",
            "modifications",
            "details",
            "step_output",
            "definition_name",
            "step_id",
            "kind",
        ):
            batch_op.drop_column(column)
