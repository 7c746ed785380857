"""``podium migrate``: bring the database schema to the latest revision."""

from __future__ import annotations

from podium.cli import render
from podium.cli.options import DatabaseUrl, JsonOutput, settings_for


def migrate_command(database_url: DatabaseUrl = None, json_output: JsonOutput = False) -> None:
    """Bring the database schema to the latest revision.

    Safe to repeat, and to run from several processes at once."""
    from podium.storage import migrate
    from podium.storage.database import Database

    settings = settings_for(database_url=database_url)
    db = Database(settings.database_url)
    try:
        with db.unavailable_as_error():
            before = migrate.current_revision(db)
            migrate.upgrade(db)
            revision = migrate.current_revision(db)
        database = db.describe()
    finally:
        db.close()
    if json_output:
        render.write_json({"database": database, "revision": revision, "previous": before})
        return
    change = "already at" if before == revision else f"upgraded from {before or 'empty'} to"
    render.plain(render.out(), f"database: {database}")
    render.plain(render.out(), f"revision: {revision} ({change} head)")
