"""The step cache for operators: list, count and invalidate entries (``/api/admin/cache``,
``podium cache``). Everything is scoped to the actor's organization."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from podium.errors import InvalidInput, Issue
from podium.service.actors import Actor
from podium.storage.cache import CacheEntry, CacheFilter
from podium.storage.store import SqlStore


class CacheEntryView(BaseModel):
    """One cache entry as operators see it (the stored output is not included)."""

    fingerprint: str
    definition: str
    stepId: str
    agent: str
    storedAt: datetime
    expiresAt: datetime | None
    hits: int
    lastHitAt: datetime | None
    sourceRunId: str
    sourceStepRecordId: str

    @classmethod
    def of(cls, entry: CacheEntry) -> CacheEntryView:
        return cls(
            fingerprint=entry.fingerprint,
            definition=entry.definition_name,
            stepId=entry.step_id,
            agent=entry.agent,
            storedAt=entry.stored_at,
            expiresAt=entry.expires_at,
            hits=entry.hits,
            lastHitAt=entry.last_hit_at,
            sourceRunId=entry.source_run_id,
            sourceStepRecordId=entry.source_step_record_id,
        )


class CacheStepStats(BaseModel):
    definition: str
    stepId: str
    entries: int
    hits: int
    expired: int


class CacheStats(BaseModel):
    """Entries of the organization, how many have expired (the sweeper removes them), and
    the hits they served, by step."""

    entries: int
    hits: int
    expired: int
    steps: list[CacheStepStats]


class Deleted(BaseModel):
    deleted: int


def cache_filter(
    *,
    definition: str | None = None,
    step: str | None = None,
    fingerprint: str | None = None,
    older_than_seconds: float | None = None,
    expired: bool = False,
    now: datetime | None = None,
) -> CacheFilter:
    """The entries an operator names; ``expired``: only those past their ``expiresAt``
    (which the sweeper would delete)."""
    now = now or datetime.now(UTC)
    older = None
    if older_than_seconds is not None:
        older = now - timedelta(seconds=older_than_seconds)
    return CacheFilter(
        definition=definition,
        step_id=step,
        fingerprint=fingerprint,
        older_than=older,
        expired_by=now if expired else None,
    )


def list_entries(
    store: SqlStore, actor: Actor, where: CacheFilter, *, limit: int = 100
) -> list[CacheEntryView]:
    """The organization's entries matching ``where``, most recently stored first."""
    return [
        CacheEntryView.of(e)
        for e in store.cache.list_entries(actor.organization, where, limit=limit)
    ]


def clear(store: SqlStore, actor: Actor, where: CacheFilter, *, everything: bool = False) -> int:
    """Delete the matching entries; without any filter only with ``everything``. Returns how
    many were deleted."""
    actor.require("operator", "clear the step cache")
    if where == CacheFilter() and not everything:
        raise InvalidInput(
            "say which entries to delete",
            [
                Issue(
                    "query",
                    "give definition, step, fingerprint, olderThanSeconds or expired, or all",
                )
            ],
        )
    return store.cache.delete_entries(actor.organization, where)


def stats(store: SqlStore, actor: Actor) -> CacheStats:
    found: dict[str, Any] = store.cache.stats(actor.organization, datetime.now(UTC))
    return CacheStats.model_validate(found)
