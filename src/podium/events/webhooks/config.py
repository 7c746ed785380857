"""Webhook configuration, read from the environment where it is used.

| variable | default | meaning |
|---|---|---|
| ``ORCHESTRATION_PROGRESS_WEBHOOK_URL`` | — | the global endpoint: every organization's events |
| ``ORCHESTRATION_PROGRESS_WEBHOOK_SECRET`` | — | its secret (``whsec_...``), required |
| ``PODIUM_WEBHOOKS_FILE`` | — | ``webhooks.yaml`` loaded at start (``podium serve``/``worker``) |
| ``PODIUM_WEBHOOK_URL_ALLOWLIST`` | — | addresses webhooks may use (agents' syntax) |
| ``PODIUM_WEBHOOK_RETRY_SCHEDULE`` | ``5s,30s,2m,10m,30m,1h,2h,4h`` | delays between attempts |
| ``PODIUM_WEBHOOK_ROTATION_OVERLAP_SECONDS`` | ``86400`` | how long the old secret still signs |
| ``PODIUM_WEBHOOK_DISABLE_AFTER`` | ``3d`` | an endpoint failing this long is disabled |
| ``PODIUM_WEBHOOK_TIMEOUT_SECONDS`` | ``15`` | request timeout |
| ``PODIUM_WEBHOOK_LEASE_SECONDS`` | ``60`` | a claimed delivery's lease (longer than the timeout) |
| ``PODIUM_WEBHOOK_CONCURRENCY`` | ``64`` | requests one process sends at once |
| ``PODIUM_PUBLIC_URL`` | — | base of the links in payloads (else relative paths) |
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from podium.errors import ConfigurationError
from podium.settings import environment

DEFAULT_SCHEDULE = "5s,30s,2m,10m,30m,1h,2h,4h"
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "": 1.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|)\s*$")


def parse_duration(text: str, name: str) -> float:
    """Seconds in ``30s``, ``2m``, ``1h``, ``3d`` or a bare number of seconds."""
    m = _DURATION.match(text)
    if m is None:
        raise ConfigurationError(f"{name}: {text!r} is not a duration such as 30s, 2m, 1h")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_schedule(text: str, name: str = "PODIUM_WEBHOOK_RETRY_SCHEDULE") -> tuple[float, ...]:
    """The retry delays of a comma-separated schedule (at most 30 entries)."""
    parts = [p for p in text.split(",") if p.strip()]
    if len(parts) > 30:
        raise ConfigurationError(f"{name}: at most 30 delays")
    return tuple(parse_duration(p, name) for p in parts)


@dataclass(frozen=True)
class WebhookSettings:
    """What the dispatcher and the endpoint registry are configured with."""

    retry_schedule: tuple[float, ...] = field(default=parse_schedule(DEFAULT_SCHEDULE))
    rotation_overlap_seconds: float = 86400.0
    disable_after_seconds: float = 3 * 86400.0
    timeout_seconds: float = 15.0
    lease_seconds: float = 60.0
    concurrency: int = 64
    poll_seconds: float = 1.0
    public_url: str = ""
    global_url: str | None = None
    global_secret: str | None = None
    file: str | None = None

    @property
    def max_attempts(self) -> int:
        """One more than the delays."""
        return len(self.retry_schedule) + 1

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: object
    ) -> WebhookSettings:
        env = environment() if environ is None else environ

        def number(name: str, default: float) -> float:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            value = parse_duration(raw, name)
            if value <= 0:
                raise ConfigurationError(f"{name} must be positive")
            return value

        concurrency = int(number("PODIUM_WEBHOOK_CONCURRENCY", 64))
        values: dict[str, object] = {
            "retry_schedule": parse_schedule(
                env.get("PODIUM_WEBHOOK_RETRY_SCHEDULE", "") or DEFAULT_SCHEDULE
            ),
            "rotation_overlap_seconds": number("PODIUM_WEBHOOK_ROTATION_OVERLAP_SECONDS", 86400),
            "disable_after_seconds": number("PODIUM_WEBHOOK_DISABLE_AFTER", 3 * 86400),
            "timeout_seconds": number("PODIUM_WEBHOOK_TIMEOUT_SECONDS", 15),
            "lease_seconds": number("PODIUM_WEBHOOK_LEASE_SECONDS", 60),
            "concurrency": max(1, concurrency),
            "public_url": env.get("PODIUM_PUBLIC_URL", "").rstrip("/"),
            "global_url": env.get("ORCHESTRATION_PROGRESS_WEBHOOK_URL") or None,
            "global_secret": env.get("ORCHESTRATION_PROGRESS_WEBHOOK_SECRET") or None,
            "file": env.get("PODIUM_WEBHOOKS_FILE") or None,
        }
        values.update(overrides)
        settings = cls(**values)  # type: ignore[arg-type]
        if settings.global_url and not settings.global_secret:
            raise ConfigurationError(
                "ORCHESTRATION_PROGRESS_WEBHOOK_URL is set but "
                "ORCHESTRATION_PROGRESS_WEBHOOK_SECRET is not: the global endpoint needs a secret"
            )
        return settings
