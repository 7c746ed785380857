"""What a run was launched with, parsed once and cached per process.

A run's definition snapshot, parameters and deadline never change after launch (target D7),
so the cache only saves parsing; it can never be stale. Runs launched from the same document
share one parsed :class:`Definition` (and its derived dependents and template reads), so the
cache's memory grows with the number of distinct documents, not with the number of runs.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from podium.domain.templating import find_references
from podium.errors import NotFound
from podium.storage.tables import runs

if TYPE_CHECKING:
    from podium.domain.definition import Definition

_CAPACITY = 4096
_DEFINITIONS = 512


@dataclass
class DefinitionPlan:
    """A parsed definition and what the engine derives from it, shared by its runs."""

    definition: Definition
    dependents: dict[str, list[str]] = field(default_factory=dict)
    reads: dict[str, frozenset[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.dependents = self.definition.dependents()


@dataclass
class RunPlan:
    """The immutable launch-time facts of one run."""

    definition: Definition
    parameters: dict[str, Any]
    organization_slug: str
    deadline_at: datetime | None
    shared: DefinitionPlan | None = None

    def __post_init__(self) -> None:
        if self.shared is None or self.shared.definition is not self.definition:
            self.shared = _shared(self.definition)
            self.definition = self.shared.definition

    @property
    def dependents(self) -> dict[str, list[str]]:
        assert self.shared is not None
        return self.shared.dependents

    def reads(self, step_id: str) -> frozenset[str]:
        """Ids of the steps whose outputs ``step_id``'s templates read."""
        assert self.shared is not None
        found = self.shared.reads.get(step_id)
        if found is None:
            spec = self.definition.step(step_id)
            value = [spec.input, spec.orchestration.parameters if spec.orchestration else None]
            found = frozenset(ref.name for _, ref in find_references(value) if ref.kind == "steps")
            self.shared.reads[step_id] = found
        return found


_definitions: OrderedDict[str, DefinitionPlan] = OrderedDict()


def _shared(definition: Definition) -> DefinitionPlan:
    """The one :class:`DefinitionPlan` of every definition equal to ``definition``."""
    key = definition.digest()
    with _lock:
        found = _definitions.get(key)
        if found is not None:
            _definitions.move_to_end(key)
            return found
    plan = DefinitionPlan(definition)
    with _lock:
        _definitions[key] = plan
        while len(_definitions) > _DEFINITIONS:
            _definitions.popitem(last=False)
    return plan


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
    from podium.domain.definition import parse_definition  # a miss: the model loads once

    plan = RunPlan(
        definition=parse_definition(row.snapshot),
        parameters=row.parameters,
        organization_slug=row.organization_slug,
        deadline_at=row.deadline_at,
    )
    remember(run_id, plan)
    return plan
