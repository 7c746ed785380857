"""Step cache fingerprints (spec section 9): pure, deterministic, versioned.

A fingerprint is the SHA-256 (hex) of the canonical JSON of a small envelope::

    {"v": 1, "agent": slug, "agentVersion": card version or module:function,
     "definition": name, "step": step id, "cacheVersion": cache.version or null,
     "input": the resolved input, ``exclude`` keys removed, arrays sorted if ``sortArrays``}

Canonical JSON: object keys sorted, UTF-8, no insignificant whitespace, and numbers in one
form (an integral float is written as the integer, ``1.0`` == ``1``; other floats in their
shortest round-trip form). Booleans stay booleans. ``NaN``, infinities, and values that are
not JSON (bytes, sets, objects) cannot be fingerprinted: :class:`Unfingerprintable`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from typing import Any

FORMAT_VERSION = 1
MAX_DEPTH = 64


class Unfingerprintable(ValueError):
    """The input holds something canonical JSON cannot express; ``path`` names it."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def _normalize(
    value: Any, path: str, exclude: frozenset[str], sort_arrays: bool, depth: int
) -> Any:
    if depth > MAX_DEPTH:
        raise Unfingerprintable(path, f"nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Unfingerprintable(path, f"{value!r} is not a JSON number")
        return int(value) if value.is_integer() and abs(value) < 2**63 else value
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise Unfingerprintable(path, f"object key {key!r} is not a string")
            if depth == 0 and key in exclude:
                continue
            out[key] = _normalize(item, f"{path}.{key}", exclude, sort_arrays, depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        items = [
            _normalize(item, f"{path}[{i}]", exclude, sort_arrays, depth + 1)
            for i, item in enumerate(value)
        ]
        if sort_arrays:
            items.sort(key=canonical_json)
        return items
    raise Unfingerprintable(path, f"a {type(value).__name__} is not JSON")


def canonical_json(value: Any) -> str:
    """``value`` (already normalized JSON data) as canonical JSON text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_input(value: Any, *, exclude: Iterable[str] = (), sort_arrays: bool = False) -> Any:
    """The resolved input as fingerprinted: top-level ``exclude`` keys removed, numbers in
    one form, arrays sorted (by their canonical JSON) when ``sort_arrays``. Raises
    :class:`Unfingerprintable`."""
    return _normalize(value, "input", frozenset(exclude), sort_arrays, 0)


def fingerprint(
    resolved_input: Any,
    *,
    agent: str,
    agent_version: str | None,
    definition: str,
    step: str,
    cache_version: str | None = None,
    exclude: Iterable[str] = (),
    sort_arrays: bool = False,
) -> str:
    """The fingerprint of one step's work (see the module docstring). Raises
    :class:`Unfingerprintable` when the input cannot be expressed as canonical JSON."""
    envelope = {
        "v": FORMAT_VERSION,
        "agent": agent,
        "agentVersion": agent_version,
        "definition": definition,
        "step": step,
        "cacheVersion": cache_version,
        "input": canonical_input(resolved_input, exclude=exclude, sort_arrays=sort_arrays),
    }
    return hashlib.sha256(canonical_json(envelope).encode("utf-8")).hexdigest()
