"""Typed values of definition parameters: type checks, enum membership, messages."""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from podium.domain.selectors import json_kind


def suggest(word: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


TYPE_NAMES: dict[str, str] = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "object": "an object",
    "array": "an array",
}


def type_matches(value: Any, kind: str) -> bool:
    """JSON-schema-like type check; booleans are not numbers, integers are numbers."""
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "integer":
        return isinstance(value, int)
    if kind == "number":
        return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
    if kind == "object":
        return isinstance(value, Mapping) and all(isinstance(k, str) for k in value)
    if kind == "array":
        return isinstance(value, list | tuple)
    return False


def same_value(left: Any, right: Any) -> bool:
    """JSON equality: ``true`` differs from ``1``; ``1`` equals ``1.0``."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(same_value(left[k], right[k]) for k in left)
    if isinstance(left, list | tuple) and isinstance(right, list | tuple):
        return len(left) == len(right) and all(map(same_value, left, right))
    if isinstance(left, list | tuple | Mapping) or isinstance(right, list | tuple | Mapping):
        return False
    return bool(left == right)


def show_value(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= 80 else text[:77] + "..."


def value_problem(value: Any, kind: str, enum: list[Any] | None) -> str | None:
    """Why ``value`` is not acceptable for a parameter of this type and enum, or None."""
    if not type_matches(value, kind):
        return f"expected {TYPE_NAMES[kind]}, got {json_kind(value)} ({show_value(value)})"
    if enum is not None and not any(same_value(value, allowed) for allowed in enum):
        return f"{show_value(value)} is not one of the allowed values {show_value(enum)}"
    return None
