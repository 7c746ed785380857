"""Runbook section 7: manual recovery actions failing.

A recovery action is refused (409) while another is in flight on the run, and a retry or
skip without ``--step`` targets the *last* failed step, which is not always the one meant.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

from podium.doctor.facts import Facts
from podium.doctor.model import Finding, Fix, Options, age, check
from podium.storage.diagnostics import FailedStep

SECTION = 7
MAX_COMMANDS = 5


def _parse(text: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text))
    except ValueError:
        return None


@check("recovery.in-flight-long", SECTION)
def in_flight_long(facts: Facts, options: Options) -> list[Finding]:
    """An operator action whose step has not settled within ``--stalled-after``: new
    actions on the run are refused until it does."""
    out: list[Finding] = []
    for flight in facts.recoveries_in_flight:
        action = flight.action
        seconds = age(options.now, _parse(action.get("at")))
        if seconds is None or seconds < options.stalled_after:
            continue
        out.append(
            Finding(
                check="recovery.in-flight-long",
                section=SECTION,
                severity="warning",
                summary=f"run {flight.run_id}: a {action.get('action')} by "
                f"{action.get('actor')} has been in flight for {seconds:.0f}s",
                evidence={
                    "runId": flight.run_id,
                    "runStatus": flight.status,
                    "action": action.get("action"),
                    "actor": action.get("actor"),
                    "step": action.get("stepId"),
                    "stepRecordId": action.get("stepRecordId"),
                    "inFlightSeconds": seconds,
                    "stalledAfterSeconds": options.stalled_after,
                },
                fix=Fix(
                    command=f"podium runs show {flight.run_id} (is its step running? is a "
                    f"worker up?); as a last resort podium abort {flight.run_id} --force",
                    api=f'POST /api/orchestrations/{flight.run_id}/actions/abort {{"force": true}}',
                ),
                organization=flight.organization_slug,
                run_id=flight.run_id,
            )
        )
    return out


def _default_target(failed: list[FailedStep]) -> FailedStep:
    """The step a retry without ``stepRecordId`` takes: the last to fail (by end time, then
    position), as :func:`podium.storage.recovery._target` orders them."""
    floor = datetime.min.replace(tzinfo=UTC)
    return max(failed, key=lambda s: (s.ended_at or floor, s.position))


@check("recovery.ambiguous-target", SECTION)
def ambiguous_target(facts: Facts, options: Options) -> list[Finding]:
    """Failed runs with several failed steps: a bare ``podium retry RUN`` takes the last one
    to fail, so the others need ``--step``."""
    by_run: dict[str, list[FailedStep]] = defaultdict(list)
    for step in facts.failed_steps_of_failed_runs:
        by_run[step.run_id].append(step)
    out: list[Finding] = []
    for run_id, failed in by_run.items():
        if len(failed) < 2:
            continue
        target = _default_target(failed)
        others = sorted((s for s in failed if s is not target), key=lambda s: s.position)
        commands = [f"podium retry {run_id} --step {s.step_id}" for s in others[:MAX_COMMANDS]]
        out.append(
            Finding(
                check="recovery.ambiguous-target",
                section=SECTION,
                severity="info",
                summary=f"run {run_id} has {len(failed)} failed steps; `podium retry {run_id}` "
                f"retries {target.step_id} only",
                evidence={
                    "runId": run_id,
                    "defaultTarget": {
                        "step": target.step_id,
                        "stepRecordId": target.step_record_id,
                    },
                    "otherFailed": {s.step_id: s.step_record_id for s in others},
                },
                fix=Fix(
                    command="; ".join(commands),
                    api=f"POST /api/orchestrations/{run_id}/actions/retry "
                    '{"stepRecordId": "..."}',
                ),
                organization=failed[0].organization_slug,
                run_id=run_id,
            )
        )
    return out
