"""Trees of runs: locking a run with its descendants, aborting them together, reading the tree.

Aborting a run aborts every active descendant in the same transaction (spec section 6).
The transaction locks the tree's root first: creating a child
(:func:`podium.storage.children.start_child`) locks it too, so no child can be created in
the tree while an abort is deciding what to abort, and a child whose creation was waiting
finds its parent step aborted and is never created. Then the aborted run and its
descendants are locked in id order, which is ancestor-first order (a child's id sorts
after its parent's).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from podium.domain.statuses import RunStatus
from podium.errors import NotFound
from podium.storage.runtx import RunTx, lock_runs
from podium.storage.tables import runs, steps

ACTIVE = (RunStatus.PLANNING, RunStatus.RUNNING, RunStatus.CHECKPOINT)


@dataclass(frozen=True)
class LockedTree:
    """A run and its descendants, locked; ``others`` are locks held only for order (the
    tree's root when it is not the run itself)."""

    run: RunTx
    descendants: list[RunTx]
    others: list[RunTx]

    @property
    def all(self) -> list[RunTx]:
        return [*self.others, self.run, *self.descendants]


def _tree_rows(conn: sa.Connection, root_id: str) -> list[sa.Row[Any, Any]]:
    return list(
        conn.execute(
            sa.select(runs.c.id, runs.c.parent_run_id).where(
                sa.or_(runs.c.root_run_id == root_id, runs.c.id == root_id)
            )
        ).all()
    )


def descendants_of(conn: sa.Connection, run_id: str, root_id: str) -> list[str]:
    """Every run below ``run_id`` in its tree (children, grandchildren, ...)."""
    children: dict[str, list[str]] = {}
    for row in _tree_rows(conn, root_id):
        if row.parent_run_id is not None:
            children.setdefault(str(row.parent_run_id), []).append(str(row.id))
    found: list[str] = []
    todo = [run_id]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


def lock_tree(conn: sa.Connection, run_id: str, now: datetime, *, skip_locked: bool) -> LockedTree:
    """Lock the tree's root, then ``run_id`` and all its descendants (id order).

    Raises :class:`NotFound` if the run does not exist.
    """
    row = conn.execute(sa.select(runs.c.root_run_id).where(runs.c.id == run_id)).first()
    if row is None:
        raise NotFound(f"run {run_id} not found")
    root_id = row.root_run_id or run_id
    others: list[RunTx] = []
    if root_id != run_id:
        others = lock_runs(conn, [root_id], now, skip_locked=skip_locked, wait=True)
    # with the root held no child can be created in this tree: the set below is final
    below = descendants_of(conn, run_id, root_id)
    locked = lock_runs(conn, [run_id, *below], now, skip_locked=skip_locked, wait=True)
    by_id = {r.run_id: r for r in locked}
    if run_id not in by_id:
        raise NotFound(f"run {run_id} not found")
    return LockedTree(
        run=by_id[run_id],
        descendants=[by_id[d] for d in sorted(below) if d in by_id],
        others=others,
    )


# -- the safety net: an active child whose parent step no longer waits for it -------------

_parent_step = steps.alias("parent_step")

ORPHANS = (
    sa.select(runs.c.id)
    .join(_parent_step, _parent_step.c.id == runs.c.parent_step_record_id)
    .where(
        runs.c.status.in_([str(s) for s in ACTIVE]),
        sa.or_(
            _parent_step.c.status != "running",
            _parent_step.c.generation != runs.c.parent_generation,
            _parent_step.c.attempt != runs.c.parent_attempt,
        ),
    )
    .order_by(runs.c.id)
    .limit(100)
)


def orphaned_children(conn: sa.Connection) -> list[str]:
    """Active child runs whose parent step is no longer running for them (the parent ran
    past its deadline, or its step was settled another way): they are to be aborted."""
    return [str(r) for r in conn.execute(ORPHANS).scalars()]


# -- reading the tree -----------------------------------------------------------------------


@dataclass(frozen=True)
class TreeNode:
    """One run of a tree, for display: ``parent_step_id`` is the parent's step that
    launched it."""

    id: str
    parent_run_id: str | None
    definition_name: str
    definition_version: str
    status: str
    depth: int
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    parent_step_id: str | None
    steps_total: int = 0
    steps_done: int = 0  # completed or skipped


def run_tree(conn: sa.Connection, run_id: str, organization: str | None) -> list[TreeNode]:
    """``run_id`` and its descendants, parents before children (id order within a level).

    Raises :class:`NotFound` if the run does not exist (or is of another organization).
    """
    query = sa.select(runs.c.root_run_id).where(runs.c.id == run_id)
    if organization is not None:
        query = query.where(runs.c.organization_slug == organization)
    row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"run {run_id} not found")
    root_id = row.root_run_id or run_id
    wanted = {run_id, *descendants_of(conn, run_id, root_id)}
    rows = conn.execute(
        sa.select(
            runs.c.id,
            runs.c.parent_run_id,
            runs.c.definition_name,
            runs.c.definition_version,
            runs.c.status,
            runs.c.depth,
            runs.c.created_at,
            runs.c.started_at,
            runs.c.ended_at,
            steps.c.step_id,
        )
        .outerjoin(steps, steps.c.id == runs.c.parent_step_record_id)
        .where(runs.c.id.in_(sorted(wanted)))
        .order_by(runs.c.depth, runs.c.id)
    ).all()
    counts: dict[str, tuple[int, int]] = {}
    done = sa.case((steps.c.status.in_(["completed", "skipped"]), 1), else_=0)
    for c in conn.execute(
        sa.select(steps.c.run_id, sa.func.count(), sa.func.sum(done))
        .where(steps.c.run_id.in_(sorted(wanted)))
        .group_by(steps.c.run_id)
    ):
        counts[c[0]] = (int(c[1]), int(c[2] or 0))
    return [
        TreeNode(
            id=r.id,
            parent_run_id=r.parent_run_id,
            definition_name=r.definition_name,
            definition_version=r.definition_version,
            status=r.status,
            depth=r.depth,
            created_at=r.created_at,
            started_at=r.started_at,
            ended_at=r.ended_at,
            parent_step_id=r.step_id,
            steps_total=counts.get(r.id, (0, 0))[0],
            steps_done=counts.get(r.id, (0, 0))[1],
        )
        for r in rows
    ]


def ordered(nodes: Sequence[TreeNode]) -> list[TreeNode]:
    """Depth-first order (each run followed by its subtree), for printing."""
    children: dict[str | None, list[TreeNode]] = {}
    ids = {n.id for n in nodes}
    roots = [n for n in nodes if n.parent_run_id not in ids]
    for n in nodes:
        if n.parent_run_id in ids:
            children.setdefault(n.parent_run_id, []).append(n)
    out: list[TreeNode] = []
    todo = list(reversed(roots))
    while todo:
        node = todo.pop()
        out.append(node)
        todo += list(reversed(children.get(node.id, [])))
    return out
