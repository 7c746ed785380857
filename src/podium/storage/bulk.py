"""Inserting many rows of one table, as the engine does in every transaction, without
SQLAlchemy's per-row work.

Every state change writes events (a chain step three of them), and each event may write a
webhook delivery row. Through a Core ``insert()``, SQLAlchemy builds the parameters of each
row and runs each value through its type's processor (UTC timestamps, JSON): more Python
than the insert itself costs SQLite. A :class:`RowWriter` sends the rows as one multi-row
``INSERT`` per 100 rows (one statement, so PostgreSQL's statement-level NOTIFY trigger on
events fires once) with values prepared as the column types would prepare them: the same
JSON text, the same timestamp text on SQLite, the same datetimes on PostgreSQL.
``tests/integration/test_storage.py`` reads rows written both ways back equal.
"""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from podium.storage import statements
from podium.storage.tables import JSON, UTCDateTime, events, runs, webhook_deliveries

_ROWS_PER_STATEMENT = 100  # with up to 12 columns: within SQLite's oldest limit of 999

_ENCODE = json.JSONEncoder().encode  # what sa.JSON writes by default (json.dumps)


# the last time converted, and its text: a transaction's events and their deliveries share
# one timestamp (a delivery three times), so most conversions repeat the previous one. One
# tuple, replaced whole: a thread reads a matching pair or misses.
_last_time: tuple[datetime | None, str] = (None, "")


def _sqlite_time(value: datetime) -> str:
    # sa.DateTime's SQLite storage format, of the UTC time (as tables.UTCDateTime stores it)
    global _last_time
    last = _last_time
    if last[0] is value:
        return last[1]
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    text = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    _last_time = (value, text)
    return text


def _postgresql_time(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value.astimezone(UTC)


def _nullable(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else convert(value)


class RowWriter:
    """Inserts rows (dicts with at least ``columns``) into ``table``; the other columns take
    their defaults."""

    def __init__(self, table: sa.Table, columns: Sequence[str]) -> None:
        self.table = table
        self.columns = tuple(columns)
        unknown = set(self.columns) - set(table.columns.keys())
        if unknown:
            raise ValueError(f"{table.name} has no column {sorted(unknown)}")
        self._kinds = tuple(self._kind(table.columns[c]) for c in self.columns)
        pick = operator.itemgetter(*self.columns)  # a row's values in column order, in C
        self._pick: Callable[[Mapping[str, Any]], Sequence[Any]] = (
            pick if len(self.columns) > 1 else lambda row: (pick(row),)
        )

    @staticmethod
    def _kind(column: sa.Column[Any]) -> str:
        if isinstance(column.type, UTCDateTime):
            return "time"
        if column.type is JSON or isinstance(column.type, sa.JSON):
            return "json"
        return "plain"

    @functools.cache  # noqa: B019 - a few writers for the process's life
    def _converters(self, dialect: str) -> tuple[tuple[int, Callable[[Any], Any]], ...]:
        """(position, converter) of the columns whose values need converting; the plain
        ones (most of them) pass as they are, with no call."""
        time = _postgresql_time if dialect == "postgresql" else _sqlite_time
        pick = {"time": time, "json": _ENCODE}
        return tuple(
            (i, pick[k] if not self.table.columns[c].nullable else _nullable(pick[k]))
            for i, (k, c) in enumerate(zip(self._kinds, self.columns, strict=True))
            if k != "plain"
        )

    @functools.cache  # noqa: B019
    def _statement(self, dialect: str, rows: int) -> str:
        names = ", ".join(f'"{c}"' for c in self.columns)
        if dialect == "postgresql":
            marks = ("%s::jsonb" if k == "json" else "%s" for k in self._kinds)
        else:
            marks = ("?" for _ in self._kinds)
        one = "(" + ", ".join(marks) + ")"
        # only this module's constants and the table's own names: no value is spliced in
        head = f"INSERT INTO {self.table.name} ({names}) VALUES "  # noqa: S608
        return head + ", ".join([one] * rows)

    def values(self, dialect: str, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        """The parameters of ``rows``, in the order of :meth:`statement`'s marks."""
        pick = self._pick
        converters = self._converters(dialect)
        values: list[Any] = []
        for r in rows:
            row = list(pick(r))
            for i, convert in converters:
                row[i] = convert(row[i])
            values += row
        return values

    def statement(self, dialect: str, rows: int) -> str:
        """``INSERT ... VALUES`` with marks for ``rows`` rows."""
        return self._statement(dialect, rows)

    def insert(self, conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        dialect = conn.dialect.name
        for start in range(0, len(rows), _ROWS_PER_STATEMENT):
            chunk = rows[start : start + _ROWS_PER_STATEMENT]
            values = self.values(dialect, chunk)
            conn.exec_driver_sql(self.statement(dialect, len(chunk)), tuple(values))


EVENTS = RowWriter(events, [c.name for c in events.columns])

DELIVERIES = RowWriter(
    webhook_deliveries,
    [
        "id",
        "endpoint_id",
        "organization_slug",
        "run_id",
        "sequence",
        "event_id",
        "event_type",
        "status",
        "attempts",
        "next_attempt_at",
        "created_at",
        "updated_at",
    ],
)


Bump = tuple[str, int]
"""(run id, last sequence): a run whose event counter moves with the events written."""


def insert_events(
    conn: sa.Connection,
    rows: Sequence[Mapping[str, Any]],
    *,
    also: Sequence[Mapping[str, Any]] = (),
    bumps: Sequence[Bump] = (),
    now: datetime | None = None,
) -> None:
    """Insert event ``rows`` (dicts keyed by the columns of ``orchestration_events``),
    ``also`` their webhook delivery rows, and set each of ``bumps``' runs' ``last_sequence``
    (and ``updated_at`` to ``now``).

    On PostgreSQL, when they fit one statement, all three are one statement (``WITH ...``:
    the inserts as data-modifying CTEs, the runs' update last): one round trip where there
    were three. Every run bumped is already locked by this transaction."""
    dialect = conn.dialect.name
    if bumps and now is None:
        raise ValueError("bumping runs needs the time")
    if (
        dialect == "postgresql"
        and rows
        and (also or bumps)
        and max(len(rows), len(also), len(bumps)) <= _ROWS_PER_STATEMENT
    ):
        parts = [f"written AS ({EVENTS.statement(dialect, len(rows))})"]
        values = EVENTS.values(dialect, rows)
        if also:
            delivered = DELIVERIES.statement(dialect, len(also))
            values += DELIVERIES.values(dialect, also)
            if not bumps:
                conn.exec_driver_sql(f"WITH {parts[0]} {delivered}", tuple(values))
                return
            parts.append(f"delivered AS ({delivered})")
        assert now is not None
        values.append(_postgresql_time(now))
        values += [v for bump in bumps for v in bump]
        sql = f"WITH {', '.join(parts)} {_bump_statement(len(bumps))}"
        conn.exec_driver_sql(sql, tuple(values))
        return
    EVENTS.insert(conn, rows)
    if also:
        DELIVERIES.insert(conn, also)
    if bumps:
        conn.execute(
            statements.BUMP_RUN, [{"rid": rid, "seq": seq, "now": now} for rid, seq in bumps]
        )


@functools.cache
def _bump_statement(count: int) -> str:
    """PostgreSQL: set ``last_sequence`` of ``count`` runs, ``updated_at`` to the first mark."""
    pairs = ", ".join(["(%s, %s::integer)"] * count)
    table = runs.name
    # only this module's constants and the table's own names: no value is spliced in
    return (
        f"UPDATE {table} SET last_sequence = v.seq, updated_at = %s "  # noqa: S608
        f"FROM (VALUES {pairs}) AS v(rid, seq) WHERE {table}.id = v.rid"
    )
