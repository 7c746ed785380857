"""wake listeners when a run's events are inserted (PostgreSQL)

Revision ID: 0004
Revises: 0003

Live streams (SSE, WebSocket) on any API instance read a run's new events from the database
when woken. A statement-level trigger sends one ``NOTIFY podium_wakeup, 'events:<runId>'``
per run and INSERT, delivered at commit: no extra round trip for the writer, and every
insert of events is covered. SQLite has one writer process, which wakes its own listeners
(``podium.storage.runtx.announce_events``).
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The channel and payload are podium.storage.dialects.NOTIFY_CHANNEL and
# podium.storage.runtx.EVENTS_WAKEUP as of this revision (a migration is a fixed snapshot).
NOTIFY_EVENTS = """
CREATE FUNCTION podium_notify_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('podium_wakeup', 'events:' || inserted.run_id)
    FROM (SELECT DISTINCT run_id FROM new_events) AS inserted;
    RETURN NULL;
END
$$
"""

EVENTS_INSERTED = """
CREATE TRIGGER orchestration_events_notify
AFTER INSERT ON orchestration_events
REFERENCING NEW TABLE AS new_events
FOR EACH STATEMENT EXECUTE FUNCTION podium_notify_events()
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(NOTIFY_EVENTS)
    op.execute(EVENTS_INSERTED)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS orchestration_events_notify ON orchestration_events")
    op.execute("DROP FUNCTION IF EXISTS podium_notify_events()")
