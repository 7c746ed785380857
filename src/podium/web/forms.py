"""Reading the dashboard's HTML forms: URL-encoded bodies, checked like any other input.

Form values are strings; the fields that carry JSON (input changes, replacement outputs) are
parsed and checked here, and every problem is reported with the field's name, so the page can
say what was wrong and where.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from podium.errors import InvalidInput, Issue

MAX_FIELDS = 64


def parse_form(body: bytes) -> dict[str, str]:
    """The fields of an ``application/x-www-form-urlencoded`` body (last value wins)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput("invalid form", [Issue("body", "is not UTF-8")]) from exc
    fields = parse_qs(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    return {name: values[-1] for name, values in fields.items()}


def optional(form: dict[str, str], name: str) -> str | None:
    value = form.get(name, "").strip()
    return value or None


def json_field(form: dict[str, str], name: str, *, require_object: bool = False) -> Any:
    """The JSON value of field ``name`` (None when blank)."""
    text = optional(form, name)
    if text is None:
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidInput("invalid form", [Issue(name, f"is not valid JSON: {exc}")]) from exc
    if require_object and not isinstance(value, dict):
        raise InvalidInput("invalid form", [Issue(name, "must be a JSON object")])
    return value


def overrides_field(form: dict[str, str], name: str) -> dict[str, str] | None:
    """Agent overrides written ``step=slug``, one or more, separated by commas or lines."""
    text = optional(form, name)
    if text is None:
        return None
    overrides: dict[str, str] = {}
    for item in text.replace("\n", ",").split(","):
        item = item.strip()
        if not item:
            continue
        step, sep, slug = item.partition("=")
        if not sep or not step.strip() or not slug.strip():
            raise InvalidInput("invalid form", [Issue(name, f"{item!r} is not step=agent")])
        overrides[step.strip()] = slug.strip()
    return overrides or None


def number_field(form: dict[str, str], name: str) -> float | None:
    text = optional(form, name)
    if text is None:
        return None
    try:
        return float(text)
    except ValueError as exc:
        raise InvalidInput("invalid form", [Issue(name, "must be a number")]) from exc
