"""JSONPath-like selectors for a step's ``output_mapping`` (spec section 2).

Grammar (a strict subset of JSONPath, no wildcards, filters or recursive descent)::

    selector := "$" segment*
    segment  := "." key | "[" index "]" | "[" quoted "]"
    key      := one or more word characters or "-"        e.g. .artifacts  .user-id
    index    := optional "-" then digits                   e.g. [0]  [-1] (from the end)
    quoted   := '...' or "..." (backslash escapes the quote or a backslash)

``$`` alone selects the whole document. The same segment syntax is used after the root of a
template placeholder (see :mod:`podium.domain.templating`).

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "PathSegment",
    "SelectorError",
    "apply_output_mapping",
    "format_path",
    "json_kind",
    "parse_segments",
    "parse_selector",
    "select",
    "validate_selector",
]

PathSegment = str | int
"""One step of a path: a mapping key (``str``) or a list index (``int``, negative from the end)."""

_KEY = re.compile(r"[\w-]+")
_INDEX = re.compile(r"-?\d+")
_PLAIN_KEY = re.compile(r"[\w-]+\Z")


class SelectorError(KeyError, ValueError):
    """A selector that is malformed, or that selects nothing in the given document.

    It is both a :class:`KeyError` (nothing at that path) and a :class:`ValueError` (bad input);
    ``str()`` gives the plain message (not the quoted repr that :class:`KeyError` would give).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def parse_segments(text: str) -> tuple[PathSegment, ...]:
    """Parse a sequence of ``.key``, ``[n]`` and ``['key']`` segments that spans all of ``text``.

    The empty string gives ``()``. Raises :class:`ValueError` naming the offending position
    when ``text`` is not such a sequence.
    """
    segments: list[PathSegment] = []
    pos = 0
    length = len(text)
    while pos < length:
        char = text[pos]
        if char == ".":
            match = _KEY.match(text, pos + 1)
            if match is None:
                raise ValueError(f"expected a key after '.' at position {pos}")
            segments.append(match.group())
            pos = match.end()
        elif char == "[":
            pos = _skip_spaces(text, pos + 1)
            if pos < length and text[pos] in "'\"":
                key, pos = _parse_quoted(text, pos)
                segments.append(key)
            else:
                match = _INDEX.match(text, pos)
                if match is None:
                    raise ValueError(
                        f"expected an integer index or a quoted key after '[' at position {pos}"
                    )
                segments.append(int(match.group()))
                pos = match.end()
            pos = _skip_spaces(text, pos)
            if pos >= length or text[pos] != "]":
                raise ValueError(f"expected ']' at position {pos}")
            pos += 1
        else:
            raise ValueError(f"unexpected {char!r} at position {pos}; expected '.' or '['")
    return tuple(segments)


def _skip_spaces(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] == " ":
        pos += 1
    return pos


def _parse_quoted(text: str, pos: int) -> tuple[str, int]:
    """Parse a quoted key starting at the quote at ``pos``; return the key and the end position."""
    quote = text[pos]
    out: list[str] = []
    pos += 1
    while pos < len(text):
        char = text[pos]
        if char == "\\" and pos + 1 < len(text) and text[pos + 1] in (quote, "\\"):
            out.append(text[pos + 1])
            pos += 2
        elif char == quote:
            return "".join(out), pos + 1
        else:
            out.append(char)
            pos += 1
    raise ValueError(f"unterminated quoted key starting at position {pos}")


def format_path(root: str, segments: Sequence[PathSegment]) -> str:
    """Render ``root`` followed by ``segments`` in selector syntax, e.g. ``$.items[0]['a b']``."""
    parts = [root]
    for segment in segments:
        if isinstance(segment, int):
            parts.append(f"[{segment}]")
        elif _PLAIN_KEY.match(segment):
            parts.append(f".{segment}")
        else:
            escaped = segment.replace("\\", "\\\\").replace("'", "\\'")
            parts.append(f"['{escaped}']")
    return "".join(parts)


def parse_selector(selector: str) -> tuple[PathSegment, ...]:
    """Parse a selector into its segments (``"$.a[0]"`` -> ``("a", 0)``).

    Raises :class:`SelectorError` when the selector is malformed.
    """
    problem = validate_selector(selector)
    if problem is not None:
        raise SelectorError(problem)
    return parse_segments(selector.strip()[1:])


def validate_selector(selector: str) -> str | None:
    """Return a message describing why ``selector`` is malformed, or ``None`` when it is valid."""
    if not isinstance(selector, str):
        return f"selector must be a string, got {type(selector).__name__}"
    text = selector.strip()
    if not text.startswith("$"):
        return f"selector {selector!r} must start with '$' (the agent's result)"
    try:
        parse_segments(text[1:])
    except ValueError as exc:
        return f"selector {selector!r} is malformed: {exc}"
    return None


def select(document: Any, selector: str) -> Any:
    """Return the part of ``document`` that ``selector`` designates (the object itself, not a copy).

    Mapping keys are matched exactly; ``[n]`` indexes lists (negative ``n`` counts from the end).
    Raises :class:`SelectorError` naming the selector and the missing part when the selector is
    malformed or nothing is there (missing key, index out of range, wrong container type).
    """
    segments = parse_selector(selector)
    current = document
    for depth, segment in enumerate(segments):
        where = format_path("$", segments[:depth])
        if isinstance(segment, str):
            if not isinstance(current, Mapping):
                raise SelectorError(
                    f"selector {selector!r}: cannot take key {segment!r} of "
                    f"{json_kind(current)} at {where}"
                )
            if segment not in current:
                raise SelectorError(f"selector {selector!r}: key {segment!r} missing at {where}")
            current = current[segment]
        else:
            if not isinstance(current, list | tuple):
                raise SelectorError(
                    f"selector {selector!r}: cannot take index [{segment}] of "
                    f"{json_kind(current)} at {where}"
                )
            if not -len(current) <= segment < len(current):
                raise SelectorError(
                    f"selector {selector!r}: index [{segment}] out of range at {where} "
                    f"(length {len(current)})"
                )
            current = current[segment]
    return current


def apply_output_mapping(result: Any, mapping: Mapping[str, str] | None) -> Any:
    """Compute a step's output from an agent's normalized ``result``.

    Without a mapping (``None``) the output is ``result`` unchanged. With one, the output is
    ``{key: select(result, selector)}`` for each entry, in mapping order; any selector that
    selects nothing raises :class:`SelectorError` (the step fails rather than losing data).
    """
    if mapping is None:
        return result
    return {key: select(result, selector) for key, selector in mapping.items()}


def json_kind(value: Any) -> str:
    """Describe the JSON kind of ``value`` for messages (``an object``, ``a list``, ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"
