"""Read-only queries for the doctor's step-cache checks (runbook section 5): how often
recent steps were served from the cache, and the expired entries nobody has swept.

A step that ran with caching on records ``metadata.runtime.cache`` (``fingerprint``,
``hit``) when it completes, whether it was served or computed (see
:func:`podium.storage.cache.settle_completed`), so those records are the requests. Both
queries are bounded: the first looks at the newest ``scan`` completed steps through
``ix_steps_claimable`` (``status, queued_at``), the second reads ``ix_cache_entries_expires``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from podium.storage.diagnostics import among_newest_completed
from podium.storage.tables import cache_entries, runs, steps


@dataclass(frozen=True)
class CacheRequests:
    """The cached-step completions of one step of one definition in a window."""

    organization_slug: str
    definition_name: str
    step_id: str
    requests: int
    hits: int
    fingerprints: int  # distinct fingerprints among the requests
    sample_run_id: str  # one run among them (whose snapshot has the step's cache settings)


@dataclass(frozen=True)
class ExpiredBacklog:
    """An organization's cache entries past ``expiresAt`` before a cutoff."""

    organization_slug: str
    entries: int
    oldest_expired_at: datetime


def cache_requests(
    conn: sa.Connection, organization: str | None, since: datetime, scan: int
) -> list[CacheRequests]:
    """Among the ``scan`` newest steps completed since ``since``, those with
    ``metadata.runtime.cache``, counted by (organization, definition, step): requests, hits
    and distinct fingerprints."""
    fingerprint = steps.c.metadata[("runtime", "cache", "fingerprint")].as_string()
    hit = steps.c.metadata[("runtime", "cache", "hit")].as_boolean()
    query = (
        sa.select(
            runs.c.organization_slug,
            runs.c.definition_name,
            steps.c.step_id,
            sa.func.count().label("requests"),
            sa.func.sum(sa.case((hit, 1), else_=0)).label("hits"),
            sa.func.count(sa.distinct(fingerprint)).label("fingerprints"),
            sa.func.max(steps.c.run_id).label("sample_run_id"),
        )
        .select_from(steps.join(runs, runs.c.id == steps.c.run_id))
        .where(among_newest_completed(since, scan), fingerprint.is_not(None))
        .group_by(runs.c.organization_slug, runs.c.definition_name, steps.c.step_id)
    )
    if organization is not None:
        query = query.where(runs.c.organization_slug == organization)
    return [
        CacheRequests(
            organization_slug=row.organization_slug,
            definition_name=row.definition_name,
            step_id=row.step_id,
            requests=int(row.requests),
            hits=int(row.hits or 0),
            fingerprints=int(row.fingerprints),
            sample_run_id=row.sample_run_id,
        )
        for row in conn.execute(query)
    ]


def expired_cache_backlog(
    conn: sa.Connection, organization: str | None, before: datetime
) -> list[ExpiredBacklog]:
    """Per organization, the entries whose ``expiresAt`` passed before ``before``."""
    c = cache_entries.c
    query = (
        sa.select(
            c.organization_slug,
            sa.func.count().label("entries"),
            sa.func.min(c.expires_at).label("oldest"),
        )
        .where(c.expires_at.is_not(None), c.expires_at <= before)
        .group_by(c.organization_slug)
        .order_by(c.organization_slug)
    )
    if organization is not None:
        query = query.where(c.organization_slug == organization)
    return [
        ExpiredBacklog(row.organization_slug, int(row.entries), row.oldest)
        for row in conn.execute(query)
    ]
