"""Limits on JSON values, in one place for every entry: launch parameters, recovery actions,
definition documents and agent outputs.

:func:`check_json_value` walks a value iteratively (never recursing, so a value of any depth
is safe to check) and raises a :class:`~podium.errors.ValueInvalid` subclass naming the path
of the first problem. Sizes are those of the value written as compact UTF-8 JSON, counted
after shared references (YAML anchors and aliases) are expanded.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from podium.errors import ValueInvalid, ValueTooDeep, ValueTooLarge

DEFAULT_MAX_NESTING_DEPTH = 64
DEFAULT_MAX_VALUE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class ValueLimits:
    """How deep (containers inside containers) and how large a JSON value may be."""

    max_depth: int = DEFAULT_MAX_NESTING_DEPTH
    max_bytes: int = DEFAULT_MAX_VALUE_BYTES


# (key or index, parent) links: a path is only spelt out when a problem is found, so a
# healthy value costs no string building
Link = tuple[str | int, "Link"] | None


def spell_path(link: Link, root: str, *, quote_keys: bool = False) -> str:
    """The path ``link`` leads along from ``root`` (``root.items[3].name``); with
    ``quote_keys``, a key that is not an identifier is written as JSON (``root["a b"]``)."""
    parts: list[str | int] = []
    while link is not None:
        parts.append(link[0])
        link = link[1]
    path = root
    for part in reversed(parts):
        if isinstance(part, int):
            path += f"[{part}]"
        elif quote_keys and not part.isidentifier():
            path += f"[{json.dumps(part, ensure_ascii=False)}]"
        else:
            path = f"{path}.{part}" if path else part
    return path


def _scalar_bytes(value: Any) -> int | str:
    """The compact JSON size of a scalar, or why it is not a JSON scalar."""
    if value is None or value is True:
        return 4
    if value is False:
        return 5
    if isinstance(value, str):
        if "\x00" in value:
            return "contains a NUL character (\\0), which cannot be stored"
        return (len(value) if value.isascii() else len(value.encode("utf-8"))) + 2
    if isinstance(value, int):
        if value.bit_length() > 64:
            return "an integer this large is not portable JSON"
        return len(str(value))
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN is not valid JSON"
        if math.isinf(value):
            return "infinity is not valid JSON"
        return len(repr(value))
    return f"a {type(value).__name__} value is not JSON"


def check_json_value(
    value: Any,
    *,
    path: str = "",
    max_depth: int = DEFAULT_MAX_NESTING_DEPTH,
    max_bytes: int = DEFAULT_MAX_VALUE_BYTES,
    json_only: bool = True,
) -> int:
    """Check that ``value`` is plain JSON (dicts with string keys, lists, strings without
    NUL, finite numbers, booleans, null), nests at most ``max_depth`` containers deep and
    takes at most ``max_bytes`` as compact JSON. Returns that size in bytes.

    Raises :class:`ValueTooDeep`, :class:`ValueTooLarge` or :class:`ValueInvalid`, whose
    ``path`` starts with ``path`` (for example ``body.replacementOutput.a.a``). The walk
    stops as soon as the size passes ``max_bytes``, so checking a huge value is cheap.

    With ``json_only=False`` only depth and size are checked (other types are measured as
    their text): for documents whose other problems are reported elsewhere, all at once."""
    total = 0
    stack: list[tuple[Any, int, Link]] = [(value, 0, None)]
    while stack:
        item, depth, link = stack.pop()
        if isinstance(item, Mapping):
            if depth >= max_depth:
                raise ValueTooDeep(
                    spell_path(link, path), f"nests deeper than {max_depth} levels (max_depth)"
                )
            total += 2 + max(0, len(item) - 1)
            for key, inner in item.items():
                if not isinstance(key, str):
                    if json_only:
                        raise ValueInvalid(spell_path(link, path), f"key {key!r} is not a string")
                    key = str(key)
                size = _scalar_bytes(key)
                if isinstance(size, str):
                    if json_only:
                        raise ValueInvalid(spell_path((key, link), path), f"key {size}")
                    size = len(key) + 2
                total += size + 1
                stack.append((inner, depth + 1, (key, link)))
        elif isinstance(item, list | tuple):
            if depth >= max_depth:
                raise ValueTooDeep(
                    spell_path(link, path), f"nests deeper than {max_depth} levels (max_depth)"
                )
            total += 2 + max(0, len(item) - 1)
            stack.extend((inner, depth + 1, (i, link)) for i, inner in enumerate(item))
        else:
            size = _scalar_bytes(item)
            if isinstance(size, str):
                if json_only:
                    raise ValueInvalid(spell_path(link, path), size)
                size = len(str(item))
            total += size
        if total > max_bytes:
            raise ValueTooLarge(
                path or "value",
                f"is more than {max_bytes} bytes as JSON (after expanding shared parts)",
            )
    return total


def check_limits(value: Any, limits: ValueLimits, *, path: str = "") -> int:
    """:func:`check_json_value` with the limits of ``limits``."""
    return check_json_value(
        value, path=path, max_depth=limits.max_depth, max_bytes=limits.max_bytes
    )


# Deepest value shown by a read; the JSON serializer of the API stops at about 250 levels.
READABLE_DEPTH = 200
_UNBOUNDED = 2**62


def truncation_marker(value: Any, reason: str) -> dict[str, Any]:
    """What a view shows instead of ``value``: ``{"truncated": true, "bytes": N, ...}``."""
    size = check_json_value(value, max_depth=_UNBOUNDED, max_bytes=_UNBOUNDED, json_only=False)
    return {"truncated": True, "bytes": size, "reason": reason}


def readable_json(value: Any, *, max_depth: int = READABLE_DEPTH) -> Any:
    """``value`` as it can always be shown: unchanged when it nests at most ``max_depth``
    levels, otherwise a copy whose parts below that depth are replaced by a
    :func:`truncation_marker`. Reading a record back never fails whatever it holds (L3)."""
    try:
        check_json_value(value, max_depth=max_depth, max_bytes=_UNBOUNDED, json_only=False)
    except ValueTooDeep:
        return _clip(value, max_depth)
    return value


def _clip(value: Any, room: int) -> Any:
    # recursion is bounded by ``room`` (at most READABLE_DEPTH), never by the value's depth
    if isinstance(value, Mapping | list | tuple) and room <= 0:
        return truncation_marker(value, "nests too deeply to be shown")
    if isinstance(value, Mapping):
        return {key: _clip(item, room - 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clip(item, room - 1) for item in value]
    return value


# Largest value carried inside an event (its data's top-level members); larger ones are a
# truncation marker there, and the full value stays readable from the step record.
MAX_EVENT_VALUE_BYTES = 16 * 1024


_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _small_and_shallow(data: Mapping[str, Any], max_bytes: int) -> bool:
    """True when all of ``data`` is at most ``max_bytes`` as compact JSON (so each member
    is) and cannot nest ``READABLE_DEPTH`` deep (it has fewer brackets than that).

    The C encoder answers this for the small data of almost every event in a few
    microseconds, where the walk of :func:`check_json_value` costs ten times more; anything
    it cannot encode (non-JSON values, NaN is fine here) goes the long way.
    """
    try:
        text = _COMPACT.encode(data)
    except (TypeError, ValueError, RecursionError):
        return False
    if len(text) > max_bytes:  # characters: never more than the UTF-8 bytes
        return False
    if not text.isascii() and len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        return False
    return text.count("[") + text.count("{") < READABLE_DEPTH


def bounded_members(
    data: Mapping[str, Any], *, max_value_bytes: int = MAX_EVENT_VALUE_BYTES
) -> dict[str, Any]:
    """``data`` with each member larger than ``max_value_bytes`` (as compact JSON) replaced
    by ``{"truncated": true, "bytes": N}``; deep members are clipped as by
    :func:`readable_json`. Cheap on small data: a walk stops at the limit."""
    if _small_and_shallow(data, max_value_bytes):
        return dict(data)  # the usual event: nothing to bound, and no walk (see below)
    bounded: dict[str, Any] = {}
    for key, value in data.items():
        try:
            check_json_value(
                value, max_depth=READABLE_DEPTH, max_bytes=max_value_bytes, json_only=False
            )
        except ValueTooLarge:
            value = truncation_marker(value, "larger than events carry; see the step record")
            del value["reason"]  # the marker of the issue: {"truncated": true, "bytes": N}
        except ValueTooDeep:
            value = readable_json(value)
        bounded[key] = value
    return bounded
