"""Routes: the step cache (``GET/DELETE /api/admin/cache``), scoped to the caller's
organization. Any role lists; deleting needs ``operator``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from podium.api.deps import ActorDep, StoreDep
from podium.api.openapi import errors
from podium.api.query import strict_query
from podium.api.schemas import NAME_PATTERN
from podium.service import cache as service
from podium.service.cache import CacheEntryView, CacheStats, Deleted
from podium.service.views import Page
from podium.storage.cache import CacheFilter

router = APIRouter(prefix="/api/admin", tags=["cache"], dependencies=[Depends(strict_query)])


def cache_filter(
    definition: Annotated[
        str | None,
        Query(min_length=1, max_length=200, pattern=NAME_PATTERN, description="Definition name."),
    ] = None,
    step: Annotated[
        str | None,
        Query(min_length=1, max_length=100, pattern=r"^[a-z0-9_-]+$", description="Step id."),
    ] = None,
    fingerprint: Annotated[
        str | None,
        Query(pattern=r"^[0-9a-f]{64}$", description="One entry's fingerprint."),
    ] = None,
    olderThanSeconds: Annotated[
        float | None,
        Query(ge=0, le=10 * 365 * 86400, description="Only entries stored this long ago."),
    ] = None,
    expired: Annotated[
        bool,
        Query(description="Only entries past their expiresAt (the sweeper's backlog)."),
    ] = False,
) -> CacheFilter:
    return service.cache_filter(
        definition=definition,
        step=step,
        fingerprint=fingerprint,
        older_than_seconds=olderThanSeconds,
        expired=expired,
    )


FilterDep = Annotated[CacheFilter, Depends(cache_filter)]


@router.get(
    "/cache",
    response_model=Page[CacheEntryView],
    summary="List step cache entries",
    responses=errors(422, 503),
)
def list_cache(
    where: FilterDep,
    store: StoreDep,
    actor: ActorDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[CacheEntryView]:
    """The organization's entries with their hit counts, most recently stored first."""
    return Page[CacheEntryView](items=service.list_entries(store, actor, where, limit=limit))


@router.get(
    "/cache/stats",
    response_model=CacheStats,
    summary="Step cache counts",
    responses=errors(503),
)
def cache_stats(store: StoreDep, actor: ActorDep) -> CacheStats:
    return service.stats(store, actor)


@router.delete(
    "/cache",
    response_model=Deleted,
    summary="Invalidate step cache entries",
    responses=errors(403, 422, 503),
)
def clear_cache(
    where: FilterDep,
    store: StoreDep,
    actor: ActorDep,
    all: Annotated[bool, Query(description="Delete every entry (no filter needed).")] = False,
) -> Deleted:
    """Delete the entries matching every given filter; ``{"deleted": N}``. Without a filter
    only with ``all=true``."""
    return Deleted(deleted=service.clear(store, actor, where, everything=all))
