"""Log records that carry fields an operator can query, and the two output formats.

Fields (``run_id``, ``step_id``, ``step_record_id``, ``attempt``, ``worker_id``, ``agent``)
come from two places, and a record's own win:

* ``extra={"run_id": ...}`` on one logging call (the standard library's convention);
* the current context, set with :func:`log_fields` (a block) or :func:`bind_fields` (the rest
  of the current asyncio task: every task starts with a copy of its creator's context, so a
  step's task binds its step once and its fields reach every record logged while it runs).

``PODIUM_LOG_FORMAT=json`` prints one JSON object per line (``time``, ``level``, ``logger``,
``message``, the fields, ``exception``); ``text`` prints the message followed by
``key=value`` pairs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal

FIELDS = ("run_id", "step_id", "step_record_id", "attempt", "worker_id", "agent")
"""The structured fields, in the order the text format prints them."""

_NONE: Mapping[str, object] = MappingProxyType({})
_context: ContextVar[Mapping[str, object]] = ContextVar("podium_log_fields", default=_NONE)


def _checked(fields: Mapping[str, object]) -> dict[str, object]:
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown log fields: {', '.join(sorted(unknown))}")
    return {k: v for k, v in fields.items() if v is not None}


@contextmanager
def log_fields(**fields: object) -> Iterator[None]:
    """Add ``fields`` (names from :data:`FIELDS`; None values are left out) to every record
    logged inside the block, in this task and the tasks it creates."""
    token = bind_fields(**fields)
    try:
        yield
    finally:
        _context.reset(token)


def bind_fields(**fields: object) -> Token[Mapping[str, object]]:
    """Add ``fields`` for the rest of the current context (an asyncio task's own copy);
    returns the token that ``_context.reset`` would undo it with."""
    return _context.set({**_context.get(), **_checked(fields)})


def current_fields() -> Mapping[str, object]:
    """The fields bound in the current context."""
    return _context.get()


class FieldsFilter(logging.Filter):
    """Copies the context's fields onto each record (attributes named as in :data:`FIELDS`)
    unless the call gave its own with ``extra=``."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _context.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


def record_fields(record: logging.LogRecord) -> dict[str, object]:
    """The structured fields a record carries."""
    return {
        name: getattr(record, name) for name in FIELDS if getattr(record, name, None) is not None
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **record_fields(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The message followed by the record's fields as ``key=value``."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = record_fields(record)
        if not fields:
            return text
        pairs = " ".join(f"{k}={v}" for k, v in fields.items())
        head, sep, tail = text.partition("\n")  # keep a traceback below the first line
        return f"{head} [{pairs}]{sep}{tail}"


def formatter(kind: Literal["text", "json"], fmt: str, datefmt: str | None) -> logging.Formatter:
    """The formatter of ``PODIUM_LOG_FORMAT``; ``fmt``/``datefmt`` shape the text format."""
    return JsonFormatter() if kind == "json" else TextFormatter(fmt, datefmt=datefmt)


def install(
    handler: logging.Handler, kind: Literal["text", "json"], fmt: str, datefmt: str | None = None
) -> None:
    """Give ``handler`` the fields filter and the formatter of ``kind``."""
    handler.addFilter(FieldsFilter())
    handler.setFormatter(formatter(kind, fmt, datefmt))
