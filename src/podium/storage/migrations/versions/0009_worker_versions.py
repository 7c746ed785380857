"""the Podium version each worker runs (``podium doctor``: workers of different versions)

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "orchestration_workers", sa.Column("version", sa.String(length=64), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("orchestration_workers") as batch:
        batch.drop_column("version")
