"""child runs: tree root, depth and the (parent step, generation, attempt) a child belongs to

Revision ID: 0006
Revises: 0005

A child run is created at most once per attempt of its parent step: the unique index on
(parent_step_record_id, parent_generation, parent_attempt) refuses a second one (S2).
``root_run_id`` names the run at the top of the tree (a root names itself): every
transaction that creates a child or aborts part of a tree locks that root first.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orchestration_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("root_run_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("depth", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("parent_generation", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("parent_attempt", sa.Integer(), nullable=True))
        batch_op.create_index("ix_runs_root", ["root_run_id"], unique=False)
        batch_op.create_index(
            "uq_runs_parent_step_attempt",
            ["parent_step_record_id", "parent_generation", "parent_attempt"],
            unique=True,
        )
    op.execute("UPDATE orchestration_runs SET root_run_id = id WHERE root_run_id IS NULL")


def downgrade() -> None:
    with op.batch_alter_table("orchestration_runs", schema=None) as batch_op:
        batch_op.drop_index("uq_runs_parent_step_attempt")
        batch_op.drop_index("ix_runs_root")
        batch_op.drop_column("parent_attempt")
        batch_op.drop_column("parent_generation")
        batch_op.drop_column("depth")
        batch_op.drop_column("root_run_id")
