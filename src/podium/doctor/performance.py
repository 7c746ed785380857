"""Runbook section 5, queue-time part: queue time rising, heavy steps recomputed.

Queue time is ``started_at - queued_at`` of steps queued recently. The recent window is
compared with the baseline before it; both need enough samples to mean anything.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from collections import defaultdict
from datetime import timedelta
from typing import Any

from podium.doctor.facts import Facts
from podium.doctor.model import Finding, Fix, Options, check
from podium.storage.diagnostics import FinishedStep

SECTION = 5
RECENT_SECONDS = 15 * 60
BASELINE_SECONDS = 2 * 60 * 60
MIN_SAMPLES = 20
RISE_FACTOR = 2.0
MIN_RECENT_P50_SECONDS = 1.0
HEAVY_SECONDS = 30.0
HEAVY_REPEATS = 3
HEAVY_WINDOW_SECONDS = 24 * 60 * 60


@check("perf.queue-time-rising", SECTION)
def queue_time_rising(facts: Facts, options: Options) -> list[Finding]:
    """The median queue time of the last 15 minutes against the two hours before."""
    recent_start = options.now - timedelta(seconds=RECENT_SECONDS)
    baseline_start = recent_start - timedelta(seconds=BASELINE_SECONDS)
    recent = facts.queue_seconds(recent_start, options.now + timedelta(seconds=1))
    baseline = facts.queue_seconds(baseline_start, recent_start)
    if len(recent) < MIN_SAMPLES or len(baseline) < MIN_SAMPLES:
        return []
    now_p50, before_p50 = statistics.median(recent), statistics.median(baseline)
    if now_p50 < MIN_RECENT_P50_SECONDS or now_p50 < RISE_FACTOR * max(before_p50, 0.001):
        return []
    s = options.settings
    return [
        Finding(
            check="perf.queue-time-rising",
            section=SECTION,
            severity="warning",
            summary=f"steps wait {now_p50:.1f}s in the queue (median, last 15 min) against "
            f"{before_p50:.1f}s before",
            evidence={
                "recentMedianSeconds": round(now_p50, 3),
                "baselineMedianSeconds": round(before_p50, 3),
                "recentSamples": len(recent),
                "baselineSamples": len(baseline),
                "liveWorkers": len(facts.workers),
                "setting": {"PODIUM_WORKER_CONCURRENCY": s.worker_concurrency},
                "metric": "orchestration_step_queue_seconds",
            },
            fix=Fix(
                command="start another `podium worker`, or raise PODIUM_WORKER_CONCURRENCY "
                f"above {s.worker_concurrency} if the machine has room",
            ),
            organization=options.organization,
        )
    ]


def _fingerprint(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _caching_on(snapshot: dict[str, Any] | None, step_id: str) -> bool:
    body = (snapshot or {}).get("orchestration") or {}
    execution = body.get("execution") or {}
    if (execution.get("caching") or {}).get("enabled"):
        return True
    for step in body.get("steps") or []:
        if isinstance(step, dict) and step.get("id") == step_id:
            return bool((step.get("cache") or {}).get("enabled"))
    return False


@check("perf.heavy-uncached", SECTION)
def heavy_uncached(facts: Facts, options: Options) -> list[Finding]:
    """Long steps completed several times with identical resolved input, caching off."""
    since = options.now - timedelta(seconds=HEAVY_WINDOW_SECONDS)
    groups: dict[tuple[str, str, str, str, str], list[FinishedStep]] = defaultdict(list)
    for s in facts.long_steps_since(since, HEAVY_SECONDS):
        key = (
            s.organization_slug,
            s.definition_name,
            s.step_id,
            s.agent or "",
            _fingerprint(s.input),
        )
        groups[key].append(s)
    out: list[Finding] = []
    for (org, definition, step_id, agent, fingerprint), repeats in groups.items():
        if len(repeats) < HEAVY_REPEATS or _caching_on(
            facts.run_snapshot(repeats[0].run_id), step_id
        ):
            continue
        durations = [
            (s.ended_at - s.started_at).total_seconds()
            for s in repeats
            if s.ended_at and s.started_at
        ]
        out.append(
            Finding(
                check="perf.heavy-uncached",
                section=SECTION,
                severity="info",
                summary=f"step {step_id} of {definition} ran {len(repeats)} times with the "
                f"same input ({statistics.mean(durations):.0f}s each) without caching",
                evidence={
                    "definition": definition,
                    "step": step_id,
                    "agent": agent,
                    "inputFingerprint": fingerprint,
                    "repeats": len(repeats),
                    "meanSeconds": round(statistics.mean(durations), 1),
                    "runIds": [s.run_id for s in repeats[:5]],
                },
                fix=Fix(
                    command=f"set cache: {{enabled: true}} on step {step_id} of {definition} "
                    "(or execution.caching.enabled) and push the definition",
                ),
                organization=org,
            )
        )
    return out
