"""Runbook section 6, the webhook half: endpoints failing now, dead letters, disabled
endpoints and outbox lag. Deliveries are written in the same transaction as their event, so
nothing is lost; these checks say what has not arrived yet and how to send it again."""

from __future__ import annotations

from podium.doctor.facts import Facts
from podium.doctor.model import Finding, Fix, Options, age, check
from podium.storage import diagnostics_links as q

SECTION = 6
# the oldest undelivered event: past this, receivers are minutes behind
LAG_AFTER_SECONDS = 60.0


def _endpoints(facts: Facts) -> list[q.Row]:
    return facts.read(q.webhook_endpoint_health)


@check("webhooks.dead-letters", SECTION)
def dead_letters(facts: Facts, options: Options) -> list[Finding]:
    """Deliveries that used every attempt, by endpoint, with the replay command."""
    out = []
    for e in _endpoints(facts):
        if not e["dead"]:
            continue
        last = facts.read(q.last_webhook_failure, endpoint_id=e["id"])
        out.append(
            Finding(
                check="webhooks.dead-letters",
                section=SECTION,
                severity="warning",
                summary=f"endpoint {e['id']} ({e['url']}) has {e['dead']} dead letter(s)",
                evidence={
                    "endpointId": e["id"],
                    "url": e["url"],
                    "deadLetters": int(e["dead"]),
                    "lastStatusCode": last["last_status_code"] if last else None,
                    "lastError": last["last_error"] if last else None,
                },
                fix=Fix(
                    command=f"podium webhooks replay --endpoint {e['id']} --since 7d",
                    api="POST /api/admin/webhooks/deliveries/{id}/replay",
                ),
                organization=e["organization_slug"],
            )
        )
    return out


@check("webhooks.failing", SECTION)
def failing(facts: Facts, options: Options) -> list[Finding]:
    """Endpoints whose deliveries are failing now (retries still to come)."""
    out = []
    for e in _endpoints(facts):
        if not e["failing"] or not e["enabled"]:
            continue
        last = facts.read(q.last_webhook_failure, endpoint_id=e["id"])
        out.append(
            Finding(
                check="webhooks.failing",
                section=SECTION,
                severity="warning",
                summary=f"endpoint {e['id']} ({e['url']}): {e['failing']} delivery(ies) "
                "failing, retrying with backoff",
                evidence={
                    "endpointId": e["id"],
                    "url": e["url"],
                    "failing": int(e["failing"]),
                    "failingSinceSeconds": age(options.now, e["failing_since"]),
                    "lastStatusCode": last["last_status_code"] if last else None,
                    "lastError": last["last_error"] if last else None,
                },
                fix=Fix(command=f"check the receiver; podium webhooks test {e['id']}"),
                organization=e["organization_slug"],
            )
        )
    return out


@check("webhooks.disabled", SECTION)
def disabled(facts: Facts, options: Options) -> list[Finding]:
    """Disabled endpoints (by an operator, a 410, or failing for too long)."""
    return [
        Finding(
            check="webhooks.disabled",
            section=SECTION,
            severity="info",
            summary=f"endpoint {e['id']} ({e['url']}) is disabled: "
            f"{e['disabled_reason'] or 'by an operator'}",
            evidence={"endpointId": e["id"], "url": e["url"], "reason": e["disabled_reason"]},
            fix=Fix(command=f"podium webhooks enable {e['id']}"),
            organization=e["organization_slug"],
        )
        for e in _endpoints(facts)
        if not e["enabled"]
    ]


@check("webhooks.outbox-lag", SECTION)
def outbox_lag(facts: Facts, options: Options) -> list[Finding]:
    """The oldest delivery not yet sent is older than a minute: no dispatcher is running, or
    the endpoint is slow or failing."""
    out = []
    for e in _endpoints(facts):
        lag = age(options.now, e["oldest_pending"])
        if lag is None or lag < LAG_AFTER_SECONDS or not e["enabled"]:
            continue
        out.append(
            Finding(
                check="webhooks.outbox-lag",
                section=SECTION,
                severity="warning",
                summary=f"endpoint {e['id']} ({e['url']}): the oldest undelivered event is "
                f"{lag:.0f}s old",
                evidence={"endpointId": e["id"], "url": e["url"], "oldestPendingSeconds": lag},
                fix=Fix(command="start a worker (podium worker) or podium serve: they deliver"),
                organization=e["organization_slug"],
            )
        )
    return out
