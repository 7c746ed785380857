"""Alembic environment: runs on the connection handed in by :mod:`podium.storage.migrate`,
or opens ``DATABASE_URL`` when run by the ``alembic`` command."""

from __future__ import annotations

from alembic import context

from podium.storage.tables import metadata

config = context.config
connection = config.attributes.get("connection")

if connection is None:
    from podium.settings import Settings
    from podium.storage.database import Database

    db = Database(Settings.from_env().database_url)
    with db.engine.begin() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        context.run_migrations()
    db.close()
else:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
