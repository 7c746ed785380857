"""D6: which real driver errors count as "the database is unavailable" (the seam in
:mod:`podium.storage.dialects`), and which stay errors about the statement."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from podium.storage import dialects
from podium.storage.database import Database
from tests.faults.outages import Cut


def _error(db: Database, sql: str) -> sa.exc.DBAPIError:
    with pytest.raises(sa.exc.DBAPIError) as caught, db.engine.begin() as conn:
        conn.exec_driver_sql(sql)
    return caught.value


def test_d6_unreachable_or_locked_is_unavailable_a_bad_statement_is_not(cuttable: Cut) -> None:
    """D6: a refused connection (PostgreSQL) or a write lock held past the busy timeout
    (SQLite) is unavailable; a syntax error or a constraint violation is not."""
    db = Database(cuttable.url)
    try:
        db.write(lambda conn: conn.exec_driver_sql("CREATE TABLE probe (id INTEGER PRIMARY KEY)"))
        db.write(lambda conn: conn.exec_driver_sql("INSERT INTO probe VALUES (1)"))
        assert not dialects.is_unavailable(_error(db, "SELEC 1"))
        assert not dialects.is_unavailable(_error(db, "INSERT INTO probe VALUES (1)"))
        cuttable.cut()
        try:
            db.engine.dispose()  # no pooled connection: the next one meets the cut
            error = _error(db, "INSERT INTO probe VALUES (2)")
        finally:
            cuttable.restore()
        assert dialects.is_unavailable(error), error
        assert dialects.is_transient(error)
    finally:
        db.close()
