"""Facts about committed transactions, for observers in the same process (metrics).

A transaction notes a fact with :func:`note`; :meth:`Database.write` hands the facts to the
observers only once the transaction committed, so a rolled-back or repeated transaction is
never counted twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

log = logging.getLogger(__name__)

OBSERVED = "podium.observed"

Observer = Callable[[Sequence[object]], None]
_observers: list[Observer] = []


@dataclass(frozen=True)
class RunEnded:
    """A run reached a terminal status."""

    run_id: str
    definition: str
    status: str
    seconds: float


def add_observer(observer: Observer) -> None:
    if observer not in _observers:
        _observers.append(observer)


def note(conn: sa.Connection, fact: object) -> None:
    """Remember ``fact`` until this connection's transaction commits."""
    conn.info.setdefault(OBSERVED, []).append(fact)


def take(conn: sa.Connection) -> list[object]:
    """The facts noted on ``conn`` so far (forgotten there)."""
    facts: list[object] = conn.info.pop(OBSERVED, None) or []
    return facts


def deliver(facts: Sequence[object]) -> None:
    """Give committed ``facts`` to every observer; an observer's error is logged only."""
    if not facts:
        return
    for observer in list(_observers):
        try:
            observer(facts)
        except Exception:
            log.exception("observer %r failed", observer)
