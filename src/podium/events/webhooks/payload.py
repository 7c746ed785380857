"""The body of a webhook request: the event envelope of spec section 10 plus links to the run,
kept under :data:`MAX_BODY_BYTES` by truncating the largest values of ``data``."""

from __future__ import annotations

import json
from typing import Any

from podium.storage.records import EventRecord

MAX_BODY_BYTES = 64 * 1024
# the size left for data once the envelope and links are written
_MARGIN = 2048


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def links(event: EventRecord, base: str) -> dict[str, str]:
    run = f"{base}/api/orchestrations/{event.run_id}"
    out = {"run": run, "events": f"{run}/events"}
    if event.step_record_id:
        out["step"] = f"{run}/steps/{event.step_record_id}"
    return out


def body(event: EventRecord, base: str = "", limit: int = MAX_BODY_BYTES) -> bytes:
    """The JSON body for ``event``; links are absolute when ``base`` (PODIUM_PUBLIC_URL) is."""
    envelope = event.envelope()
    envelope["links"] = links(event, base)
    encoded = _dumps(envelope)
    if len(encoded) < limit:
        return encoded
    envelope["data"] = truncated(
        event.data, limit - _MARGIN, envelope["links"].get("step") or envelope["links"]["run"]
    )
    encoded = _dumps(envelope)
    if len(encoded) >= limit:  # a huge number of small values: keep only the marker
        envelope["data"] = {"truncated": True, "sizeBytes": len(_dumps(event.data))}
        encoded = _dumps(envelope)
    return encoded


def truncated(data: dict[str, Any], budget: int, link: str) -> dict[str, Any]:
    """``data`` with its largest values (nested one level into objects) replaced by
    ``{"truncated": true, "sizeBytes": n, "link": ...}`` until it fits ``budget`` bytes."""
    out = dict(data)
    first: list[tuple[int, tuple[str, ...]]] = []
    last: list[tuple[int, tuple[str, ...]]] = []  # parents whose big child goes first
    for key, value in out.items():
        size = len(_dumps(value))
        children: list[tuple[int, tuple[str, ...]]] = []
        if isinstance(value, dict):
            out[key] = dict(value)
            children = [(len(_dumps(v)), (key, k)) for k, v in value.items()]
        first += children
        if children and max(children)[0] * 2 > size:
            last.append((size, (key,)))  # truncating the child keeps its siblings
        else:
            first.append((size, (key,)))
    total = len(_dumps(out))
    for size, path in sorted(first, key=lambda s: -s[0]) + sorted(last, key=lambda s: -s[0]):
        if total < budget:
            break
        parent: dict[str, Any] = out
        if len(path) == 2:
            parent = out[path[0]]
            if not isinstance(parent, dict) or path[1] not in parent:
                continue
        current = parent.get(path[-1])
        if isinstance(current, dict) and current.get("truncated") is True:
            continue
        parent[path[-1]] = {"truncated": True, "sizeBytes": size, "link": link}
        total = len(_dumps(out))
    return out
