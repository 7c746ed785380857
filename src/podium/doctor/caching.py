"""Runbook section 5, cache part: steps whose cache rarely serves them, and expired entries
that nobody sweeps.

The requests of a step are its completions with ``metadata.runtime.cache`` in the last day
(served or computed); the sweeper of every worker deletes entries past ``expiresAt`` every
``PODIUM_SWEEP_SECONDS``, so entries expired long before that are a sweeper not running.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from podium.doctor.facts import Facts
from podium.doctor.model import Finding, Fix, Options, age, check
from podium.storage.diagnostics_cache import CacheRequests

SECTION = 5
WINDOW_SECONDS = 24 * 60 * 60
MIN_REQUESTS = 20
LOW_HIT_RATE = 0.5  # as the PodiumCacheHitRateFalling alert (deploy/prometheus/alerts.yml)
MIN_BACKLOG = 100
OVERDUE_SWEEPS = 10  # sweeper rounds an expired entry outlives before it counts as overdue
MIN_OVERDUE_SECONDS = 60.0


def cache_settings(snapshot: dict[str, Any] | None, step_id: str) -> dict[str, Any]:
    """The cache settings step ``step_id`` ran with: ``execution.caching`` with the step's
    own ``cache`` fields laid over it (a field left out keeps the definition's)."""
    body = (snapshot or {}).get("orchestration") or {}
    merged = dict((body.get("execution") or {}).get("caching") or {})
    for step in body.get("steps") or []:
        if isinstance(step, dict) and step.get("id") == step_id:
            merged.update({k: v for k, v in (step.get("cache") or {}).items() if v is not None})
    return merged


def _hit_rate_fix(r: CacheRequests, expiring: bool, ttl: Any) -> str:
    where = f"step {r.step_id} of {r.definition_name}"
    if expiring:
        return f"raise cache.ttlSeconds of {where} (now {ttl or 'none'}) and push the definition"
    return (
        f"make the input of {where} stable (add volatile keys to cache.exclude, set "
        "cache.sortArrays) and push the definition; compare the fingerprints with "
        f"`podium cache list --org {r.organization_slug} --definition {r.definition_name} "
        f"--step {r.step_id}`"
    )


@check("perf.cache-hit-rate", SECTION)
def cache_hit_rate(facts: Facts, options: Options) -> list[Finding]:
    """Steps with caching on served from the cache less than half the time over at least
    20 requests in the last day. The misses of fingerprints already seen in the window say
    whether entries expire before reuse (TTL) or the input changes every run (churn)."""
    since = options.now - timedelta(seconds=WINDOW_SECONDS)
    out: list[Finding] = []
    for r in facts.cache_requests(since):
        if r.requests < MIN_REQUESTS or r.hits >= LOW_HIT_RATE * r.requests:
            continue
        misses = r.requests - r.hits
        # every fingerprint's first request in the window is a miss, unless an older entry
        # served it; the misses beyond those found an entry gone (expired or cleared)
        seen_misses = max(0, misses - r.fingerprints)
        expiring = 2 * seen_misses > misses
        ttl = cache_settings(facts.run_snapshot(r.sample_run_id), r.step_id).get("ttlSeconds")
        cause = (
            "its entries expire before they are reused"
            if expiring
            else "its input changes from run to run"
        )
        out.append(
            Finding(
                check="perf.cache-hit-rate",
                section=SECTION,
                severity="info",
                summary=f"step {r.step_id} of {r.definition_name} was served from the cache "
                f"{r.hits} of {r.requests} times in 24 h ({r.hits / r.requests:.0%}): {cause}",
                evidence={
                    "definition": r.definition_name,
                    "step": r.step_id,
                    "requests": r.requests,
                    "hits": r.hits,
                    "hitRate": round(r.hits / r.requests, 3),
                    "fingerprints": r.fingerprints,
                    "missesOfSeenFingerprints": seen_misses,
                    "ttlSeconds": ttl,
                    "metric": "orchestration_cache_requests_total",
                },
                fix=Fix(command=_hit_rate_fix(r, expiring, ttl)),
                organization=r.organization_slug,
            )
        )
    return out


@check("perf.cache-expired-backlog", SECTION)
def cache_expired_backlog(facts: Facts, options: Options) -> list[Finding]:
    """At least 100 entries of an organization expired for longer than ten sweeper rounds
    (a minute at least) and still stored. A warning when workers are live (their sweeper
    is not removing them); ``info`` when none is, as nothing sweeps until one starts."""
    sweep = options.settings.sweep_seconds
    overdue = max(MIN_OVERDUE_SECONDS, OVERDUE_SWEEPS * sweep)
    live = len(facts.workers)
    out: list[Finding] = []
    for backlog in facts.expired_cache_backlog(options.now - timedelta(seconds=overdue)):
        if backlog.entries < MIN_BACKLOG:
            continue
        org = backlog.organization_slug
        cause = (
            f"the sweeper of the {live} live worker(s) is not removing them (look for "
            "'sweep failed' in their logs)"
            if live
            else "no worker is running to sweep them"
        )
        out.append(
            Finding(
                check="perf.cache-expired-backlog",
                section=SECTION,
                severity="warning" if live else "info",
                summary=f"{backlog.entries} cache entries of {org} expired more than "
                f"{overdue:g}s ago and are still stored: {cause}",
                evidence={
                    "expiredEntries": backlog.entries,
                    "oldestExpiredAt": backlog.oldest_expired_at.isoformat(),
                    "oldestOverdueSeconds": age(options.now, backlog.oldest_expired_at),
                    "liveWorkers": live,
                    "setting": {"PODIUM_SWEEP_SECONDS": sweep},
                },
                fix=Fix(
                    command=f"podium cache clear --expired --org {org}",
                    api="DELETE /api/admin/cache?expired=true",
                ),
                organization=org,
            )
        )
    return out
