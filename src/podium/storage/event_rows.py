"""Inserting event rows, the engine's most frequent write, without per-row SQLAlchemy work.

Every state change writes events, a chain step three of them. Through a Core ``insert()``,
SQLAlchemy builds the parameters of each row and runs each value through its type's
processor (the UTC timestamp, the JSON data): more Python than the insert itself costs
SQLite. Here the rows become one multi-row ``INSERT`` (one statement, so PostgreSQL's
statement-level NOTIFY trigger fires once) with values prepared as the column types would
prepare them: the same JSON text, the same timestamp text on SQLite, the same datetimes on
PostgreSQL. ``tests/integration/test_storage.py`` reads rows written both ways back equal.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from podium.storage.tables import events

COLUMNS = tuple(c.name for c in events.columns)
# the order :func:`insert_events` writes its values in; a schema change must change both
_WRITTEN = (
    "id",
    "run_id",
    "sequence",
    "type",
    "organization_slug",
    "timestamp",
    "step_id",
    "step_record_id",
    "data",
)
if COLUMNS != _WRITTEN:  # pragma: no cover - a guard for whoever changes the table
    raise RuntimeError(f"orchestration_events has columns {COLUMNS}, event_rows writes {_WRITTEN}")
_ROWS_PER_STATEMENT = 100  # 900 parameters: within SQLite's oldest limit of 999

_ENCODE = json.JSONEncoder().encode  # what sa.JSON writes by default (json.dumps)


def _sqlite_time(value: datetime) -> str:
    # sa.DateTime's SQLite storage format, of the UTC time (as tables.UTCDateTime stores it)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _postgresql_time(value: datetime) -> datetime:
    return value.astimezone(UTC)


@functools.cache
def _statement(dialect: str, rows: int) -> str:
    quoted = ", ".join(f'"{c}"' for c in COLUMNS)
    if dialect == "postgresql":
        one = "(" + ", ".join("%s::jsonb" if c == "data" else "%s" for c in COLUMNS) + ")"
    else:
        one = "(" + ", ".join("?" for _ in COLUMNS) + ")"
    # only constants of this module and the table's own names: no value is ever spliced in
    head = f"INSERT INTO {events.name} ({quoted}) VALUES "  # noqa: S608
    return head + ", ".join([one] * rows)


def _chunks(rows: Sequence[Mapping[str, Any]]) -> Iterator[Sequence[Mapping[str, Any]]]:
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        yield rows[start : start + _ROWS_PER_STATEMENT]


def insert_events(conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert event ``rows`` (dicts keyed by the columns of ``orchestration_events``)."""
    dialect = conn.dialect.name
    stamp = _postgresql_time if dialect == "postgresql" else _sqlite_time
    for chunk in _chunks(rows):
        values: list[Any] = []
        for r in chunk:
            if r["timestamp"].tzinfo is None:
                raise ValueError("naive datetime given to a UTC column")
            values += (
                r["id"],
                r["run_id"],
                r["sequence"],
                r["type"],
                r["organization_slug"],
                stamp(r["timestamp"]),
                r["step_id"],
                r["step_record_id"],
                _ENCODE(r["data"]),
            )
        conn.exec_driver_sql(_statement(dialect, len(chunk)), tuple(values))
