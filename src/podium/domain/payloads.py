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

from podium.domain.limits import Link, spell_path

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


def _spell(root: str, link: Link) -> str:
    return spell_path(link, root, quote_keys=True)


def _string_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character (\\u0000), which cannot be stored"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "contains a lone surrogate, which is not valid UTF-8"
    return None


_PLAIN_SCALARS = frozenset({type(None), bool, int})
# the size of a payload is that of this encoding, as UTF-8 (one encoder: ``json.dumps``
# with arguments builds a new one per call)
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False)


def check_payload(value: Any, limits: PayloadLimits, path: str = "output") -> None:
    """Raise :class:`PayloadInvalid` unless ``value`` is plain JSON (objects with string
    keys, arrays, strings, finite numbers, booleans, null) that nests at most
    ``limits.max_depth`` levels and serialises to at most ``limits.max_bytes`` bytes.

    Every step's output passes here: a lean pass (:func:`_is_plain`) clears the usual
    healthy value, and only one it does not clear is walked again by :func:`_walk`, which
    names the first problem and where it is.
    """
    if not _is_plain(value, limits.max_depth):
        _walk(value, limits, path)
    size = len(_ENCODER.encode(value).encode("utf-8"))
    if size > limits.max_bytes:
        raise PayloadInvalid(
            path, f"is {size} bytes as JSON, more than the limit of {limits.max_bytes}"
        )


def _is_plain(value: Any, max_depth: int) -> bool:
    """True if ``value`` is plain JSON within ``max_depth`` (False: look closer). Scalars
    are checked where they sit, containers go on the stack; exact types first."""
    todo: list[tuple[Any, int]] = [(value, 0)]
    pop, push = todo.pop, todo.append
    while todo:
        item, depth = pop()
        kind = type(item)
        if kind is dict or kind is list:
            if depth >= max_depth:
                return False
            if kind is dict:
                for key in item:
                    if type(key) is not str or "\x00" in key:
                        return False
                    if not key.isascii() and _string_problem(key):
                        return False
                members = item.values()
            else:
                members = item
            for inner in members:
                t = type(inner)
                if t is str:
                    if "\x00" in inner or (not inner.isascii() and _string_problem(inner)):
                        return False
                elif t is float:
                    if not math.isfinite(inner):
                        return False
                elif t is not int and t is not bool and inner is not None:
                    push((inner, depth + 1))
        elif kind is str:
            if _string_problem(item):
                return False
        elif kind is float:
            if not math.isfinite(item):
                return False
        elif kind is not int and kind is not bool and item is not None:
            return False  # tuples, subclasses, other types: the walk decides
    return True


def _walk(value: Any, limits: PayloadLimits, path: str) -> None:
    """Raise :class:`PayloadInvalid` for the first part of ``value`` (in document order)
    that is not plain JSON within ``limits.max_depth``, naming where it is. Iterative, so a
    value nested far deeper than the limit cannot exhaust the stack."""
    # (value, where it is, depth of the container holding it)
    todo: list[tuple[Any, Link, int]] = [(value, None, 0)]
    pop, push = todo.pop, todo.append
    while todo:
        item, link, depth = pop()
        kind = type(item)  # exact types first: isinstance on every item costs twice as much
        if kind in _PLAIN_SCALARS or isinstance(item, bool | int):
            continue
        if kind is str or isinstance(item, str):
            problem = _string_problem(item)
            if problem is not None:
                raise PayloadInvalid(_spell(path, link), problem)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise PayloadInvalid(_spell(path, link), f"{_float_name(item)} is not valid JSON")
        elif kind is dict or isinstance(item, dict):
            _enter(path, link, depth, limits)
            for key in reversed(list(item)):
                if not isinstance(key, str):
                    raise PayloadInvalid(
                        _spell(path, link),
                        f"key {key!r} is a {type(key).__name__}; JSON keys are strings",
                    )
                inner = (key, link)
                problem = _string_problem(key)
                if problem is not None:
                    raise PayloadInvalid(_spell(path, inner), problem)
                push((item[key], inner, depth + 1))
        elif isinstance(item, list | tuple):
            _enter(path, link, depth, limits)
            for index in range(len(item) - 1, -1, -1):
                push((item[index], (index, link), depth + 1))
        else:
            raise PayloadInvalid(
                _spell(path, link), f"a {type(item).__name__} is not JSON-serialisable"
            )


def _enter(path: str, link: Link, depth: int, limits: PayloadLimits) -> None:
    if depth + 1 > limits.max_depth:
        raise PayloadInvalid(
            _spell(path, link), f"nests deeper than the limit of {limits.max_depth} levels"
        )


def _float_name(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"
