"""Schema migrations through Alembic (``podium migrate``).

Checking where a schema stands does not load Alembic: :data:`HEAD` names the newest
revision under ``migrations/versions`` (``tests/integration/test_schema_revision.py`` keeps it
equal to Alembic's head) and :func:`current_revision` reads ``alembic_version`` with one
query. A command that only reads the database therefore starts without Alembic's import
and its scan of the migration scripts; Alembic is loaded when there is something to
upgrade.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from podium.storage.database import Database

if TYPE_CHECKING:
    from alembic.config import Config

SCRIPT_LOCATION = str(Path(__file__).with_name("migrations"))
# The newest revision in migrations/versions: a new migration changes it too.
HEAD = "0011"
VERSION_TABLE = "alembic_version"


@dataclass(frozen=True)
class SchemaStatus:
    """Where a database's schema stands: ``current`` (None: no Podium schema) against the
    ``head`` revision this Podium needs."""

    current: str | None
    head: str | None

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def _config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    return config


def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema to ``revision``; safe to run again and from several processes.
    A schema already at :data:`HEAD` is left alone without loading Alembic."""
    if revision == "head" and current_revision(db) == HEAD:
        return
    from alembic import command

    config = _config()

    def _run(conn: object) -> None:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)

    with db.engine.begin() as conn:
        if not db.is_sqlite:
            # one migrator at a time when several processes start together
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7312001)")
        _run(conn)


def current_revision(db: Database) -> str | None:
    """The revision in ``alembic_version``; None for a database without Podium's schema."""
    with db.engine.connect() as conn:
        if not sa.inspect(conn).has_table(VERSION_TABLE):
            return None
        found = sorted(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())
    # Podium's history is a line, so one row; several (branches) never equal HEAD
    return " ".join(found) or None


def head_revision(db: Database | None = None) -> str | None:
    """Alembic's head, read from the migration scripts (slow: loads Alembic and every
    script). :data:`HEAD` is the same revision without the cost."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config()).get_current_head()


def schema_status(db: Database) -> SchemaStatus:
    return SchemaStatus(current=current_revision(db), head=HEAD)


def is_current(db: Database) -> bool:
    return current_revision(db) == HEAD
