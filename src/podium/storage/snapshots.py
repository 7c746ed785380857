"""What a run was launched with, parsed once and cached per process.

A run's definition snapshot, parameters and deadline never change after launch (target D7),
so the cache only saves parsing; it can never be stale.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from podium.domain.definition import Definition, parse_definition
from podium.domain.templating import find_references
from podium.errors import NotFound
from podium.storage.tables import runs

_CAPACITY = 4096


@dataclass
class RunPlan:
    """The immutable launch-time facts of one run."""

    definition: Definition
    parameters: dict[str, Any]
    organization_slug: str
    deadline_at: datetime | None
    dependents: dict[str, list[str]] = field(default_factory=dict)
    _reads: dict[str, frozenset[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.dependents = self.definition.dependents()

    def reads(self, step_id: str) -> frozenset[str]:
        """Ids of the steps whose outputs ``step_id``'s templates read."""
        found = self._reads.get(step_id)
        if found is None:
            spec = self.definition.step(step_id)
            value = [spec.input, spec.orchestration.parameters if spec.orchestration else None]
            found = frozenset(ref.name for _, ref in find_references(value) if ref.kind == "steps")
            self._reads[step_id] = found
        return found


_cache: OrderedDict[str, RunPlan] = OrderedDict()
_lock = threading.Lock()


def remember(run_id: str, plan: RunPlan) -> None:
    with _lock:
        _cache[run_id] = plan
        _cache.move_to_end(run_id)
        while len(_cache) > _CAPACITY:
            _cache.popitem(last=False)


def plan_for(conn: sa.Connection, run_id: str) -> RunPlan:
    """The launch-time plan of a run, from the cache or the run row."""
    with _lock:
        found = _cache.get(run_id)
        if found is not None:
            _cache.move_to_end(run_id)
            return found
    row = conn.execute(
        sa.select(
            runs.c.snapshot, runs.c.parameters, runs.c.organization_slug, runs.c.deadline_at
        ).where(runs.c.id == run_id)
    ).first()
    if row is None:
        raise NotFound(f"run {run_id} not found")
    plan = RunPlan(
        definition=parse_definition(row.snapshot),
        parameters=row.parameters,
        organization_slug=row.organization_slug,
        deadline_at=row.deadline_at,
    )
    remember(run_id, plan)
    return plan
