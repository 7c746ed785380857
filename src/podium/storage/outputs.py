"""A run's outputs: the outputs of its leaf steps (those nothing depends on).

Each output is stored once, in its step record. The run row's ``outputs`` column holds the
same members with every large value as ``{"truncated": true, "bytes": N}`` (see
:func:`podium.domain.limits.bounded_members`), so that reading a run, or ending a live stream
of it, costs little memory whatever its steps returned. Code that needs the full values (a
parent step taking its child run's results) reads them here, from the step records.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from podium.domain.limits import MAX_EVENT_VALUE_BYTES, bounded_members
from podium.storage import snapshots
from podium.storage.tables import steps


def leaf_step_ids(conn: sa.Connection, run_id: str) -> list[str]:
    """The ids of the run's steps that no other step depends on, in definition order."""
    dependents = snapshots.plan_for(conn, run_id).dependents
    return [step_id for step_id, after in dependents.items() if not after]


def leaf_outputs(conn: sa.Connection, run_id: str) -> dict[str, Any]:
    """The full outputs of the run's leaf steps, by step id, in definition order."""
    leaves = leaf_step_ids(conn, run_id)
    if not leaves:
        return {}
    rows = conn.execute(
        sa.select(steps.c.step_id, steps.c.output)
        .where(steps.c.run_id == run_id, steps.c.step_id.in_(leaves))
        .order_by(steps.c.position)
    ).all()
    return {r.step_id: r.output for r in rows}


def read_if_small(
    column: sa.ColumnElement[Any], limit: int
) -> tuple[sa.ColumnElement[Any], sa.ColumnElement[bool]]:
    """Two select columns: ``column``'s value where its stored text is at most ``limit``
    long (else NULL), and whether it is longer. The length is measured by the database,
    so a large value is not sent to this process unless it is asked for on its own; as the
    stored text it is an estimate of the compact JSON size, good for choosing how to read."""
    size = sa.func.length(sa.cast(column, sa.Text))
    return (
        sa.case((size <= limit, column), else_=sa.null()).label(column.key),
        (size > limit).label("large"),
    )


def bounded_leaf_outputs(conn: sa.Connection, run_id: str) -> dict[str, Any]:
    """:func:`leaf_outputs` with each value larger than an event carries as a truncation
    marker. Small values come in one read; each large one is read on its own and dropped as
    soon as it is measured, so this holds at most one large output at a time."""
    leaves = leaf_step_ids(conn, run_id)
    if not leaves:
        return {}
    rows = conn.execute(_LEAVES_IF_SMALL, {"rid": run_id, "leaves": leaves}).all()
    found: dict[str, Any] = {}
    for row in rows:
        if not row.large:
            found.update(bounded_members({row.step_id: row.output}))
            continue
        value = conn.execute(_ONE_OUTPUT, {"sid": row.id}).scalar()
        found.update(bounded_members({row.step_id: value}))
        del value
    return found


# built once: every run's end reads its leaves (building a statement costs more than this one
# costs SQLite to run)
_LEAVES_IF_SMALL = (
    sa.select(steps.c.id, steps.c.step_id, *read_if_small(steps.c.output, MAX_EVENT_VALUE_BYTES))
    .where(
        steps.c.run_id == sa.bindparam("rid"),
        steps.c.step_id.in_(sa.bindparam("leaves", expanding=True)),
    )
    .order_by(steps.c.position)
)
_ONE_OUTPUT = sa.select(steps.c.output).where(steps.c.id == sa.bindparam("sid"))
