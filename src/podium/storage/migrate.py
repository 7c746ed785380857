"""Schema migrations through Alembic (``podium migrate``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from podium.storage.database import Database

SCRIPT_LOCATION = str(Path(__file__).with_name("migrations"))


@dataclass(frozen=True)
class SchemaStatus:
    """Where a database's schema stands: ``current`` (None: no Podium schema) against the
    ``head`` revision this Podium needs."""

    current: str | None
    head: str | None

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def _config(db: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    return config


def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema to ``revision``; safe to run again and from several processes."""
    config = _config(db)

    def _run(conn: object) -> None:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)

    with db.engine.begin() as conn:
        if not db.is_sqlite:
            # one migrator at a time when several processes start together
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7312001)")
        _run(conn)


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(db: Database) -> str | None:
    return ScriptDirectory.from_config(_config(db)).get_current_head()


def schema_status(db: Database) -> SchemaStatus:
    return SchemaStatus(current=current_revision(db), head=head_revision(db))


def is_current(db: Database) -> bool:
    return current_revision(db) == head_revision(db)
