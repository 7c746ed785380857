"""webhook deliveries: the index by endpoint and time holds dead letters only

``ix_webhook_deliveries_created (endpoint_id, created_at)`` took an entry for every delivery
the engine wrote: on SQLite one more B-tree page in every step's transaction, about a tenth
of what an endpoint subscribed to every event costs a chain (issue 13's bound). What needs
an endpoint's deliveries by time is the bulk replay of its dead letters, so the index now
holds those alone (a partial index, on both databases); the admin list of an endpoint's
deliveries finds them through ``uq_webhook_deliveries_order``, whose first column is the
endpoint.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

DEAD = sa.text("status = 'dead'")


def upgrade() -> None:
    op.drop_index("ix_webhook_deliveries_created", table_name="webhook_deliveries")
    op.create_index(
        "ix_webhook_deliveries_dead",
        "webhook_deliveries",
        ["endpoint_id", "created_at"],
        sqlite_where=DEAD,
        postgresql_where=DEAD,
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_dead", table_name="webhook_deliveries")
    op.create_index(
        "ix_webhook_deliveries_created", "webhook_deliveries", ["endpoint_id", "created_at"]
    )
