"""The schema check without Alembic: ``migrate.HEAD`` is Alembic's head, and the revision
read with one query is the one Alembic reads, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic.runtime.migration import MigrationContext

from podium.errors import ConfigurationError
from podium.storage import migrate
from podium.storage.database import Database
from podium.storage.store import SqlStore


def alembic_current(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_the_head_constant_is_alembics_head() -> None:
    head = migrate.head_revision()
    assert head == migrate.HEAD, f"a new migration: set HEAD = {head!r} in podium.storage.migrate"


def test_the_newest_migration_script_is_the_head() -> None:
    scripts = sorted(Path(migrate.SCRIPT_LOCATION, "versions").glob("[0-9]*.py"))
    assert scripts[-1].name.startswith(f"{migrate.HEAD}_")


def test_the_revision_read_is_alembics_on_an_empty_an_old_and_a_current_schema(
    db_url: str,
) -> None:
    db = Database(db_url)
    try:
        assert migrate.current_revision(db) is None
        assert alembic_current(db) is None
        assert not migrate.schema_status(db).up_to_date
        migrate.upgrade(db, "0005")
        assert migrate.current_revision(db) == alembic_current(db) == "0005"
        assert migrate.schema_status(db) == migrate.SchemaStatus(current="0005", head=migrate.HEAD)
        migrate.upgrade(db)  # from an old revision, Alembic still runs
        assert migrate.current_revision(db) == alembic_current(db) == migrate.HEAD
        assert migrate.schema_status(db).up_to_date
    finally:
        db.close()


def test_a_read_only_open_of_an_old_schema_says_to_migrate(db_url: str) -> None:
    db = Database(db_url)
    try:
        migrate.upgrade(db, "0005")
    finally:
        db.close()
    with pytest.raises(ConfigurationError, match=r"is at revision 0005; .* run `podium migrate`"):
        SqlStore.open(db_url, migrate_schema=False)


def test_an_up_to_date_schema_is_checked_and_migrated_without_loading_alembic(
    db_url: str,
) -> None:
    SqlStore.open(db_url).close()
    code = (
        "import sys\n"
        "from podium.storage.store import SqlStore\n"
        f"SqlStore.open({db_url!r}, migrate_schema=False).close()\n"
        f"SqlStore.open({db_url!r}).close()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]"
