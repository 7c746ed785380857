"""Which events an endpoint subscribed to, and the delivery statuses (spec section 11). Pure."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

# organization_slug of the global endpoint (ORCHESTRATION_PROGRESS_WEBHOOK_URL)
GLOBAL_ORG = "*"
GLOBAL_ENDPOINT_ID = "global"

MAX_EVENT_FILTERS = 100
MAX_DEFINITION_FILTERS = 100


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    FAILED = "failed"  # an attempt failed; retries remain
    DEAD = "dead"  # the last attempt failed: in the dead-letter queue


# a later delivery of the same (run, endpoint) waits until the earlier one is in one of these
SETTLED = (DeliveryStatus.DELIVERED, DeliveryStatus.DEAD)


def check_event_filter(pattern: str) -> str | None:
    """Why ``pattern`` is not an event filter (an exact name, ``prefix.*`` or ``*``)."""
    if not pattern or len(pattern) > 64:
        return "must be an event name or a prefix such as orchestration.run.*, 1-64 characters"
    body = pattern[:-2] if pattern.endswith(".*") else pattern
    if pattern == "*":
        return None
    if "*" in body or not all(part and part.replace("_", "").isalnum() for part in body.split(".")):
        return "must be dot-separated names with an optional trailing .*"
    return None


def matches_event(filters: Sequence[str], event_type: str) -> bool:
    """Whether an endpoint with ``filters`` (empty: all) receives ``event_type``."""
    if not filters:
        return True
    for f in filters:
        if f == "*" or f == event_type:
            return True
        if f.endswith(".*") and event_type.startswith(f[:-1]):
            return True
    return False


def matches_endpoint(
    endpoint_org: str,
    event_filters: Sequence[str],
    definitions: Sequence[str] | None,
    *,
    organization: str,
    event_type: str,
    definition: str | None,
) -> bool:
    """Whether an endpoint receives an event of ``organization``'s run of ``definition``."""
    if endpoint_org not in (GLOBAL_ORG, organization):
        return False
    if not matches_event(event_filters, event_type):
        return False
    return definitions is None or definition in definitions
