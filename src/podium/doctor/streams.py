"""Runbook section 6, streaming part: settings a proxy would cut, a refused webhook URL."""

from __future__ import annotations

from podium.doctor.facts import Facts
from podium.doctor.model import Finding, Fix, Options, check
from podium.net.urlguard import UrlGuard, UrlNotAllowed

SECTION = 6
PROXY_IDLE_SECONDS = 60.0
WEBHOOK_URL_VARIABLE = "ORCHESTRATION_PROGRESS_WEBHOOK_URL"


@check("streams.keepalive", SECTION)
def keepalive(facts: Facts, options: Options) -> list[Finding]:
    """A stream keepalive longer than a typical proxy idle timeout (60 s) lets proxies cut
    quiet streams. (``Settings`` caps it at 15 s today; this guards a raised cap.)"""
    if not options.system or options.settings.keepalive_seconds < PROXY_IDLE_SECONDS:
        return []
    return [
        Finding(
            check="streams.keepalive",
            section=SECTION,
            severity="warning",
            summary=f"streams send a keepalive every {options.settings.keepalive_seconds:g}s; "
            f"a proxy with a {PROXY_IDLE_SECONDS:g}s idle timeout cuts quiet streams",
            evidence={
                "setting": {"PODIUM_KEEPALIVE_SECONDS": options.settings.keepalive_seconds},
                "typicalProxyIdleSeconds": PROXY_IDLE_SECONDS,
            },
            fix=Fix(command="set PODIUM_KEEPALIVE_SECONDS=15 and restart `podium serve`"),
        )
    ]


@check("streams.webhook-url-refused", SECTION)
def webhook_url_refused(facts: Facts, options: Options) -> list[Finding]:
    """``ORCHESTRATION_PROGRESS_WEBHOOK_URL`` set to a URL the outbound URL guard refuses."""
    url = options.environ.get(WEBHOOK_URL_VARIABLE)
    if not options.system or not url:
        return []
    try:
        UrlGuard.from_env(options.environ, subject="WEBHOOK").check_url(
            url, field_name=WEBHOOK_URL_VARIABLE
        )
    except UrlNotAllowed as exc:
        return [
            Finding(
                check="streams.webhook-url-refused",
                section=SECTION,
                severity="error",
                summary=f"{WEBHOOK_URL_VARIABLE} is refused by the URL guard: {exc.message}",
                evidence={
                    "setting": {WEBHOOK_URL_VARIABLE: url},
                    "reason": exc.details.get("reason"),
                    "resolvedAddress": exc.details.get("resolvedAddress"),
                },
                fix=Fix(
                    command=f"set {WEBHOOK_URL_VARIABLE} to a public https URL, or allow its "
                    "network with PODIUM_WEBHOOK_URL_ALLOWLIST",
                ),
            )
        ]
    return []
