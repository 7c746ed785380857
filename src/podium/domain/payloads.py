"""Checking a value before it is stored as JSON: what both databases can hold, within limits.

An agent's output is stored in a JSON column, copied into the ``step.completed`` event and
read back by every later step, so one that cannot be stored (NaN, a NUL character that
PostgreSQL refuses, a lone surrogate, a Python object) or that is too deep or too large must
fail its own step at once, with a message that says what was wrong and where.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

DEFAULT_MAX_DEPTH = 64
DEFAULT_MAX_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class PayloadLimits:
    """How deep (levels of objects and arrays) and how large (bytes of UTF-8 JSON) a value
    may be."""

    max_depth: int = DEFAULT_MAX_DEPTH
    max_bytes: int = DEFAULT_MAX_BYTES


class PayloadInvalid(ValueError):
    """A value that cannot be stored; ``path`` names where (``output.items[3]``)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def _key_path(path: str, key: str) -> str:
    if key.isidentifier():
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def _check_string(text: str, path: str) -> None:
    if "\x00" in text:
        raise PayloadInvalid(path, "contains a NUL character (\\u0000), which cannot be stored")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise PayloadInvalid(path, "contains a lone surrogate, which is not valid UTF-8") from None


def check_payload(value: Any, limits: PayloadLimits, path: str = "output") -> None:
    """Raise :class:`PayloadInvalid` unless ``value`` is plain JSON (objects with string
    keys, arrays, strings, finite numbers, booleans, null) that nests at most
    ``limits.max_depth`` levels and serialises to at most ``limits.max_bytes`` bytes.

    Iterative, so a value nested far deeper than the limit cannot exhaust the stack.
    """
    # (value, path, depth of the container holding it)
    todo: list[tuple[Any, str, int]] = [(value, path, 0)]
    while todo:
        item, where, depth = todo.pop()
        if item is None or isinstance(item, bool | int):
            continue
        if isinstance(item, str):
            _check_string(item, where)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise PayloadInvalid(where, f"{_float_name(item)} is not valid JSON")
        elif isinstance(item, dict):
            _enter(where, depth, limits)
            for key in reversed(list(item)):
                if not isinstance(key, str):
                    raise PayloadInvalid(
                        where, f"key {key!r} is a {type(key).__name__}; JSON keys are strings"
                    )
                _check_string(key, _key_path(where, key))
                todo.append((item[key], _key_path(where, key), depth + 1))
        elif isinstance(item, list | tuple):
            _enter(where, depth, limits)
            for index in range(len(item) - 1, -1, -1):
                todo.append((item[index], f"{where}[{index}]", depth + 1))
        else:
            raise PayloadInvalid(where, f"a {type(item).__name__} is not JSON-serialisable")
    size = len(json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8"))
    if size > limits.max_bytes:
        raise PayloadInvalid(
            path, f"is {size} bytes as JSON, more than the limit of {limits.max_bytes}"
        )


def _enter(where: str, depth: int, limits: PayloadLimits) -> None:
    if depth + 1 > limits.max_depth:
        raise PayloadInvalid(where, f"nests deeper than the limit of {limits.max_depth} levels")


def _float_name(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"
