"""Statements on the hot path, built once.

Building a SQLAlchemy Core statement and computing its cache key costs more than running it
on SQLite; these are built at import with bind parameters and reused, which keeps the
per-step overhead of the engine within a small multiple of the database floor.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from podium.domain.statuses import StepStatus
from podium.storage.tables import JSON, UTCDateTime, runs, steps

RUNNING, QUEUED, PENDING, FAILED = (
    str(StepStatus.RUNNING),
    str(StepStatus.QUEUED),
    str(StepStatus.PENDING),
    str(StepStatus.FAILED),
)


def _now() -> sa.BindParameter[Any]:
    return sa.bindparam("now", type_=UTCDateTime())


RUN_LOCK_COLUMNS = (
    runs.c.id,
    runs.c.organization_slug,
    runs.c.status,
    runs.c.max_parallel_steps,
    runs.c.last_sequence,
    runs.c.recovery_in_flight,
    # for the metrics of a run's end (issue 12), without a query of their own
    runs.c.definition_name,
    runs.c.created_at,
)

LOCK_RUN = sa.select(*RUN_LOCK_COLUMNS).where(runs.c.id == sa.bindparam("rid"))
LOCK_RUN_FOR_UPDATE = LOCK_RUN.with_for_update()

# several runs in id order (one order for every writer: no deadlocks); PostgreSQL row locks
# skipping the runs others hold, or waiting for them
LOCK_RUNS = (
    sa.select(*RUN_LOCK_COLUMNS)
    .where(runs.c.id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(runs.c.id)
)
LOCK_RUNS_SKIP_LOCKED = LOCK_RUNS.with_for_update(skip_locked=True)
LOCK_RUNS_WAIT = LOCK_RUNS.with_for_update()

INSERT_RUN = runs.insert()
INSERT_STEPS = steps.insert()

BUMP_RUN = (
    runs.update()
    .where(runs.c.id == sa.bindparam("rid"))
    .values(last_sequence=sa.bindparam("seq"), updated_at=_now())
)

STEP_COUNTS = (
    sa.select(steps.c.status, sa.func.count())
    .where(steps.c.run_id == sa.bindparam("rid"))
    .group_by(steps.c.status)
)


def _complete_step(output: str, input: str) -> sa.Update:
    """running -> completed, fenced by the claim token; the output and resolved input bound
    as ``output`` and ``input`` (named apart where it joins another UPDATE: there SQLAlchemy
    would take parameters named like columns as more SET values of the other UPDATE too)."""
    return (
        steps.update()
        .where(
            steps.c.id == sa.bindparam("sid"),
            steps.c.status == RUNNING,
            steps.c.claim_token == sa.bindparam("token"),
        )
        .values(
            status=str(StepStatus.COMPLETED),
            output=sa.bindparam(output, type_=JSON),
            input=sa.bindparam(input, type_=JSON),
            error=sa.null(),
            ended_at=_now(),
            updated_at=_now(),
            lease_owner=sa.null(),
            lease_expires_at=sa.null(),
        )
    )


COMPLETE_STEP = _complete_step("output", "input")

# Count a settled dependency off its dependents; a pending dependent whose last dependency
# this was becomes queued in the same statement. SET expressions see the old row.
_becomes_ready = sa.and_(steps.c.deps_remaining == sa.bindparam("d"), steps.c.status == PENDING)
RELEASE_DEPENDENTS = (
    steps.update()
    .where(
        steps.c.run_id == sa.bindparam("rid"),
        steps.c.step_id.in_(sa.bindparam("names", expanding=True)),
    )
    .values(
        deps_remaining=steps.c.deps_remaining - sa.bindparam("d"),
        status=sa.case((_becomes_ready, QUEUED), else_=steps.c.status),
        queued_at=sa.case((_becomes_ready, _now()), else_=steps.c.queued_at),
        updated_at=sa.case((_becomes_ready, _now()), else_=steps.c.updated_at),
    )
    .returning(
        steps.c.id, steps.c.step_id, steps.c.status, steps.c.deps_remaining, steps.c.position
    )
)


def claim_in_run_statement(dialect: str) -> sa.Update:
    """Claim up to ``:want`` queued steps of ``:run_id`` in definition order, as far as its
    ``maxParallelSteps`` (``:maxp``) allows, and none while a step of the run has failed."""
    running = (
        sa.select(sa.func.count())
        .where(steps.c.run_id == sa.bindparam("rid"), steps.c.status == RUNNING)
        .scalar_subquery()
    )
    failed = sa.exists().where(steps.c.run_id == sa.bindparam("rid"), steps.c.status == FAILED)
    least, greatest = (
        (sa.func.min, sa.func.max) if dialect == "sqlite" else (sa.func.least, sa.func.greatest)
    )
    picked = (
        sa.select(steps.c.id)
        .where(steps.c.run_id == sa.bindparam("rid"), steps.c.status == QUEUED, ~failed)
        .order_by(steps.c.position)
        .limit(greatest(0, least(sa.bindparam("want"), sa.bindparam("maxp") - running)))
    )
    return (
        steps.update()
        .where(steps.c.id.in_(picked.scalar_subquery()), steps.c.status == QUEUED)
        .values(
            status=RUNNING,
            lease_owner=sa.bindparam("worker"),
            lease_expires_at=sa.bindparam("expires", type_=UTCDateTime()),
            claim_token=steps.c.claim_token + 1,
            started_at=_now(),
            updated_at=_now(),
        )
        .returning(
            steps.c.id,
            steps.c.step_id,
            steps.c.position,
            steps.c.attempt,
            steps.c.generation,
            steps.c.claim_token,
            steps.c.metadata,
            steps.c.queued_at,  # for orchestration_step_queue_seconds (issue 12)
        )
    )


CLAIM_IN_RUN = {d: claim_in_run_statement(d) for d in ("sqlite", "postgresql")}

QUEUED_RUNS = (
    sa.select(steps.c.run_id)
    .join(runs, runs.c.id == steps.c.run_id)
    .where(steps.c.status == QUEUED, runs.c.status == "running")
    .order_by(steps.c.queued_at, steps.c.position)
    .limit(sa.bindparam("scan"))
)

UPSTREAM_OUTPUTS = sa.select(steps.c.step_id, steps.c.output).where(
    steps.c.run_id == sa.bindparam("rid"),
    steps.c.step_id.in_(sa.bindparam("names", expanding=True)),
    steps.c.status.in_([str(StepStatus.COMPLETED), str(StepStatus.SKIPPED)]),
)

DUE_RETRIES = (
    sa.select(steps.c.run_id, steps.c.id)
    .where(steps.c.status == PENDING, steps.c.available_at <= _now())
    .limit(500)
)

# PostgreSQL: a step's completion and the release of its dependents in one statement (one
# round trip, not two). The release is a data-modifying CTE that runs only if the fenced
# completion did (``EXISTS`` over its ``RETURNING``); the two touch different rows. One row
# comes back even when nothing was released: ``completed`` says whether the step was, and
# the other columns (NULL when none) are RELEASE_DEPENDENTS' rows.
_done = _complete_step("step_output", "step_input").returning(steps.c.id).cte("done")
_released = RELEASE_DEPENDENTS.where(sa.exists(sa.select(_done.c.id))).cte("released")
_one = sa.select(sa.literal(1).label("one")).subquery("one")
COMPLETE_AND_RELEASE = sa.select(
    sa.select(sa.func.count()).select_from(_done).scalar_subquery().label("completed"),
    _released.c.id,
    _released.c.step_id,
    _released.c.status,
    _released.c.deps_remaining,
    _released.c.position,
).select_from(_one.outerjoin(_released, sa.true()))
