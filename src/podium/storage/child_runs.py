"""``ChildRuns``: the storage port for child orchestrations, one transaction per method.

Kept beside :class:`~podium.storage.store.SqlStore` (and built on its database) so that
the child-run feature stays in its own modules: :mod:`podium.storage.children` (creating a
child, settling its parent step) and :mod:`podium.storage.cascade` (trees, abort).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from podium.domain.definition import Definition, parse_definition
from podium.storage import cascade, children, definitions
from podium.storage.cascade import TreeNode
from podium.storage.children import ChildStart
from podium.storage.records import ClaimedStep
from podium.storage.store import SqlStore

# statuses of definition versions a range may pick now or after an operator re-activates it
LAUNCHABLE_LATER = ("draft", "active", "inactive")


class ChildRuns:
    """Child-run transactions on ``store``'s database. Safe to share between threads."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    def start(self, step: ClaimedStep, parameters: dict[str, Any], *, max_depth: int) -> ChildStart:
        """Create (once) and record the child of ``step``'s current attempt."""
        return self.store.db.write(
            lambda conn: children.start_child(
                conn,
                step,
                parameters,
                now=datetime.now(UTC),
                skip_locked=self.store.skip_locked,
                max_depth=max_depth,
            )
        )

    def settle_ended(self) -> list[str]:
        """Settle the parent steps of every child that ended; returns those children."""
        # a read first: the usual answer is "none", and on SQLite a write transaction would
        # take the database's write lock every tick for nothing
        with self.store.db.read() as conn:
            if not children.any_ended_children(conn):
                return []
        return self.store.db.write(
            lambda conn: children.settle_ended_children(
                conn, now=datetime.now(UTC), skip_locked=self.store.skip_locked
            )
        )

    def orphans(self) -> list[str]:
        """Active children whose parent step no longer waits for them."""
        with self.store.db.read() as conn:
            return cascade.orphaned_children(conn)

    def tree(self, run_id: str, organization: str | None = None) -> list[TreeNode]:
        """The run and its descendants, depth-first (see :func:`cascade.ordered`)."""
        with self.store.db.read() as conn:
            return cascade.ordered(cascade.run_tree(conn, run_id, organization))

    def versions_of(self, organization: str, name: str) -> list[Definition]:
        """Versions of ``name`` in ``organization`` or ``global`` that a version range may
        pick, now or once re-activated (for the static graph check)."""
        with self.store.db.read() as conn:
            records = definitions.list_versions(
                conn, organization, name=name, statuses=LAUNCHABLE_LATER
            )
        return [parse_definition(r.document) for r in records]
