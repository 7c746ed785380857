"""Template placeholders in step inputs (spec section 2, "Templating").

Placeholders, with optional whitespace inside the braces::

    {{ parameters.<name>[<path>] }}     a launch parameter (a path may navigate into it)
    {{ steps.<id>[<path>] }}            a step's output, e.g. {{ steps.research.items[0].title }}
    {{ run.id }}  {{ run.organizationSlug }}

``<path>`` is a sequence of ``.key``, ``[n]`` (negative from the end) and ``['quoted key']``
segments, the same syntax as output-mapping selectors (:mod:`podium.domain.selectors`).

A string that is exactly one placeholder (surrounding whitespace allowed) resolves to the raw
value (object, list, number, boolean or null). Otherwise each placeholder is rendered into the
text: strings as they are, numbers and booleans as JSON (``true``), null as ``null``, objects and
lists as compact JSON. Mapping keys are never templated. There is no escape syntax: ``{{`` always
opens a placeholder.

A placeholder without a value raises :class:`~podium.errors.InputResolutionError`; it never
renders as an empty string.

Pure: no I/O.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

from podium.domain.selectors import PathSegment, format_path, json_kind, parse_segments
from podium.errors import InputResolutionError, Issue

__all__ = [
    "RUN_FIELDS",
    "Reference",
    "TemplateContext",
    "collect_references",
    "find_references",
    "join_path",
    "resolve",
    "template_errors",
]

RefKind = Literal["parameters", "steps", "run"]
RUN_FIELDS: frozenset[str] = frozenset({"id", "organizationSlug"})
"""The fields of ``run`` a placeholder may read."""

_ROOT = re.compile(r"[A-Za-z_]\w*")
_ROOTS: tuple[RefKind, ...] = ("parameters", "steps", "run")


@dataclass(frozen=True)
class Reference:
    """One placeholder: what it reads (``kind`` + ``name``), where inside it, and its text.

    ``name`` is the parameter name, the step id or the run field; ``path`` navigates into that
    value (empty for ``{{ steps.financials }}``); ``text`` is the placeholder exactly as written,
    braces included.
    """

    kind: RefKind
    name: str
    path: tuple[PathSegment, ...]
    text: str


@dataclass(frozen=True)
class TemplateContext:
    """The values placeholders resolve against.

    ``steps`` maps step id to that step's output (a step absent from it has no output yet);
    ``run`` holds ``id`` and ``organizationSlug``. When ``readable_steps`` is given, reading any
    step outside it is an error even if its output is present (a step may only read the steps
    it depends on, directly or transitively).
    """

    parameters: Mapping[str, Any]
    steps: Mapping[str, Any]
    run: Mapping[str, Any]
    readable_steps: frozenset[str] | None = None


def join_path(base: str, segment: PathSegment) -> str:
    """Append one segment to a json-ish path: ``join_path("input", "a")`` -> ``"input.a"``,
    ``join_path("", "a")`` -> ``"a"``, ``join_path("x", 0)`` -> ``"x[0]"``."""
    joined = format_path(base, (segment,))
    return joined[1:] if not base and joined.startswith(".") else joined


def _key_segment(key: Any) -> PathSegment:
    return key if isinstance(key, str) else repr(key)


def _parse_expression(expression: str, text: str) -> Reference:
    """Parse the inside of one placeholder (already stripped); ``text`` is used in messages."""
    if not expression:
        raise ValueError(f"empty placeholder {text}")
    match = _ROOT.match(expression)
    root = match.group() if match else ""
    if root not in _ROOTS:
        shown = repr(root) if root else repr(expression)
        raise ValueError(
            f"placeholder {text} has unknown root {shown}; expected parameters.<name>, "
            "steps.<id> or run.id / run.organizationSlug"
        )
    assert match is not None  # root is non-empty, so the regex matched
    try:
        segments = parse_segments(expression[match.end() :])
    except ValueError as exc:
        raise ValueError(f"malformed placeholder {text}: {exc}") from None
    if not segments or not isinstance(segments[0], str):
        expected = {"parameters": "parameters.<name>", "steps": "steps.<id>", "run": "run.id"}
        raise ValueError(f"placeholder {text} must name what it reads, e.g. {expected[root]}")
    kind: RefKind = "parameters" if root == "parameters" else "steps" if root == "steps" else "run"
    name, path = segments[0], segments[1:]
    if kind == "run" and (name not in RUN_FIELDS or path):
        raise ValueError(
            f"placeholder {text} reads an unknown run field; only run.id and "
            "run.organizationSlug exist"
        )
    return Reference(kind=kind, name=name, path=path, text=text)


def _scan_all(text: str) -> tuple[list[tuple[int, int, Reference]], list[str]]:
    """Find the placeholders of one string as ``(start, end, reference)``, plus one message per
    malformed placeholder (scanning stops at an unclosed ``{{``)."""
    found: list[tuple[int, int, Reference]] = []
    errors: list[str] = []
    pos = 0
    while (start := text.find("{{", pos)) >= 0:
        close = text.find("}}", start + 2)
        if close < 0:
            errors.append(f"unclosed '{{{{' at position {start} of {text!r}")
            break
        end = close + 2
        try:
            ref = _parse_expression(text[start + 2 : close].strip(), text[start:end])
        except ValueError as exc:
            errors.append(str(exc))
        else:
            found.append((start, end, ref))
        pos = end
    return found, errors


def _scan(text: str) -> list[tuple[int, int, Reference]]:
    """Like :func:`_scan_all` but raise ValueError at the first malformed placeholder."""
    found, errors = _scan_all(text)
    if errors:
        raise ValueError(errors[0])
    return found


def _walk_strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Yield ``(path, string)`` for every string value nested in ``value`` (keys excluded)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _walk_strings(item, join_path(path, _key_segment(key)))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _walk_strings(item, join_path(path, index))


def find_references(value: Any) -> list[tuple[str, Reference]]:
    """Return every placeholder in ``value`` as ``(path within value, reference)``, in order.

    ``value`` may be a string or nested dicts/lists of them; paths look like ``context.findings``
    or ``items[0]`` (``""`` for ``value`` itself). Raises :class:`ValueError` naming the location
    and the problem at the first malformed placeholder (``{{ }}``, an unknown root such as
    ``{{ foo.bar }}``, an unclosed ``{{``, an unknown run field).
    """
    found: list[tuple[str, Reference]] = []
    for path, text in _walk_strings(value, ""):
        try:
            found.extend((path, ref) for _, _, ref in _scan(text))
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}" if path else str(exc)) from None
    return found


def collect_references(
    value: Any, base_path: str = ""
) -> tuple[list[tuple[str, Reference]], list[Issue]]:
    """Like :func:`find_references` but never raises: return the references of every
    well-formed placeholder and one :class:`Issue` per malformed one.

    Paths are prefixed with ``base_path`` (``"input"`` gives ``input.context.findings``).
    """
    found: list[tuple[str, Reference]] = []
    issues: list[Issue] = []
    for path, text in _walk_strings(value, base_path):
        refs, errors = _scan_all(text)
        found.extend((path, ref) for _, _, ref in refs)
        issues.extend(Issue(path, error) for error in errors)
    return found, issues


def template_errors(value: Any, base_path: str = "") -> list[Issue]:
    """Return one :class:`Issue` per malformed placeholder in ``value`` (paths as in
    :func:`collect_references`)."""
    return collect_references(value, base_path)[1]


def resolve(value: Any, ctx: TemplateContext, *, path: str = "input") -> Any:
    """Return a new structure equal to ``value`` with every placeholder resolved against ``ctx``.

    ``path`` names ``value`` in error messages. Raises :class:`InputResolutionError` when a
    placeholder has no value (unknown parameter, step without output or not readable, missing
    key, index out of range, run field unset), with a message like
    ``input.context.findings: {{ steps.research.findings }} has no value (key 'findings' missing
    in output of step 'research')``, and when a placeholder is malformed.
    """
    if isinstance(value, str):
        return _resolve_string(value, ctx, path)
    if isinstance(value, Mapping):
        return {
            key: resolve(item, ctx, path=join_path(path, _key_segment(key)))
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [resolve(item, ctx, path=join_path(path, i)) for i, item in enumerate(value)]
    return copy.deepcopy(value)


def _resolve_string(text: str, ctx: TemplateContext, where: str) -> Any:
    try:
        found = _scan(text)
    except ValueError as exc:
        raise InputResolutionError(f"{where}: {exc}", details={"path": where}) from None
    if not found:
        return text
    if len(found) == 1:
        start, end, ref = found[0]
        if not text[:start].strip() and not text[end:].strip():
            return copy.deepcopy(_lookup(ref, ctx, where))
    parts: list[str] = []
    pos = 0
    for start, end, ref in found:
        parts.append(text[pos:start])
        parts.append(_render(_lookup(ref, ctx, where)))
        pos = end
    parts.append(text[pos:])
    return "".join(parts)


def _render(value: Any) -> str:
    """Render a value into text: strings as-is, everything else as compact JSON."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool | int | float | Mapping | list | tuple):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return str(value)


def _lookup(ref: Reference, ctx: TemplateContext, where: str) -> Any:
    """Return the value ``ref`` designates in ``ctx`` or raise InputResolutionError."""

    def fail(reason: str) -> NoReturn:
        raise InputResolutionError(
            f"{where}: {ref.text} has no value ({reason})",
            details={"path": where, "placeholder": ref.text, "reason": reason},
        )

    if ref.kind == "parameters":
        if ref.name not in ctx.parameters:
            fail(f"parameter '{ref.name}' was not given and has no default")
        current = ctx.parameters[ref.name]
        label, root = f"parameter '{ref.name}'", f"parameters.{ref.name}"
    elif ref.kind == "steps":
        if ctx.readable_steps is not None and ref.name not in ctx.readable_steps:
            fail(f"step '{ref.name}' is not a dependency of this step")
        if ref.name not in ctx.steps:
            fail(f"step '{ref.name}' has no output")
        current = ctx.steps[ref.name]
        label, root = f"output of step '{ref.name}'", format_path("steps", (ref.name,))
    else:
        if ctx.run.get(ref.name) is None:
            fail(f"run field '{ref.name}' is not set")
        return ctx.run[ref.name]

    for depth, segment in enumerate(ref.path):
        container = label if depth == 0 else format_path(root, ref.path[:depth])
        if isinstance(segment, str):
            if not isinstance(current, Mapping):
                fail(f"cannot take key '{segment}' of {json_kind(current)} in {container}")
            if segment not in current:
                fail(f"key '{segment}' missing in {container}")
            current = current[segment]
        else:
            if not isinstance(current, list | tuple):
                fail(f"cannot take index [{segment}] of {json_kind(current)} in {container}")
            if not -len(current) <= segment < len(current):
                fail(f"index [{segment}] out of range in {container} (length {len(current)})")
            current = current[segment]
    return current
