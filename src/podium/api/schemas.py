"""Request bodies and the few response shapes that are the API's own (health probes).

Responses about Podium's objects are the views of :mod:`podium.service.views`. Request
bodies reject unknown members, so that a misspelt field is an error rather than ignored.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

from podium.domain.limits import ValueLimits, check_json_value
from podium.service.recovery import MAX_DELAY_SECONDS

NAME_PATTERN = r"^[a-z0-9-]+$"
MAX_SEQUENCE = 2**31 - 1  # event sequences are 32-bit integers in the database

ID_PATTERN = r"^[0-9A-Fa-f-]+$"
ORGANIZATION_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
RunId = Annotated[
    str,
    Path(
        alias="runId",
        min_length=1,
        max_length=64,
        pattern=ID_PATTERN,
        description="Run id, or a unique prefix of 8 or more characters.",
    ),
]
StepRecordId = Annotated[
    str, Path(alias="stepRecordId", min_length=1, max_length=64, pattern=ID_PATTERN)
]


def nul_path(value: Any, path: str = "") -> str | None:
    """The path of the first string (or key) in ``value`` holding a NUL character, which
    PostgreSQL cannot store; None when there is none."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return inner
            if (found := nul_path(item, inner)) is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            if (found := nul_path(item, f"{path}[{index}]")) is not None:
                return found
    return None


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_text(value: object) -> object:
    if isinstance(value, str) and not _ISO_DATE.match(value):
        raise ValueError("must be an ISO 8601 date-time such as 2025-01-31T12:00:00Z")
    return value


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


# An ISO 8601 date-time (not a number of seconds); without an offset it is UTC.
IsoDatetime = Annotated[datetime, BeforeValidator(_iso_text), AfterValidator(_utc)]


# The limits of JSON request bodies, set per request by the app (api.limits.BodyLimit)
REQUEST_VALUE_LIMITS: ContextVar[ValueLimits] = ContextVar(
    "podium_request_value_limits",
    default=ValueLimits(),  # noqa: B039 - a frozen dataclass, not mutable
)


class Body(BaseModel):
    """A request body: unknown members and NUL characters in strings are refused; a body
    nesting deeper than ``PODIUM_MAX_NESTING_DEPTH`` is a 422 naming the path
    (:class:`~podium.errors.ValueTooDeep`), checked before anything recurses into it."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        limits = REQUEST_VALUE_LIMITS.get()
        check_json_value(
            data,
            path="body",
            max_depth=limits.max_depth,
            max_bytes=limits.max_bytes,
            json_only=False,  # other problems are reported below, each on its own path
        )
        if (found := nul_path(data)) is not None:
            raise ValueError(f"{found or 'the body'} contains a NUL character")
        return data


class LaunchBody(Body):
    """``POST /api/orchestrations``: what to launch."""

    definition: str = Field(
        min_length=1, max_length=200, pattern=NAME_PATTERN, description="Definition name."
    )
    version: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Exact version or npm-style range; the highest active version without.",
    )
    parameters: dict[str, Any] | None = Field(
        default=None, description="Launch parameters, checked against the definition."
    )
    refresh: bool = Field(
        default=False,
        description="Recompute cached steps and store their results again (resets the TTL).",
    )


class KeyBody(Body):
    """``POST /api/admin/keys``: the key to create."""

    organization: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        pattern=ORGANIZATION_PATTERN,
        description="The key's organization; the caller's when left out. An admin key "
        "creates keys for its own organization only.",
    )
    role: Literal["viewer", "operator", "admin"]
    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Who uses it, recorded as the actor of its actions; `role@organization` "
        "when left out.",
    )


class Modifications(Body):
    """Changes for the retried step: merged into its input, and/or another agent."""

    input: dict[str, Any] | None = None
    agentOverrides: dict[str, str] | None = Field(
        default=None, description="Step id to agent slug, for this retry only."
    )


class ActionBody(Body):
    """``POST /api/orchestrations/{runId}/actions/{retry|skip|abort}``.

    ``stepRecordId`` applies to retry and skip, ``delaySeconds`` and ``modifications`` to
    retry, ``replacementOutput`` to skip and ``force`` to abort; setting one for another
    action is an error."""

    stepRecordId: str | None = Field(
        default=None, min_length=1, max_length=64, description="Step to act on."
    )
    note: str | None = Field(default=None, max_length=4000, description="Why, for the audit.")
    delaySeconds: float | None = Field(default=None, ge=0, le=MAX_DELAY_SECONDS)
    modifications: Modifications | None = None
    replacementOutput: Any = Field(
        default=None, description="Output recorded for the skipped step ({skipped: true} without)."
    )
    force: bool | None = Field(
        default=None, description="Abort even while another action is in flight."
    )
    resumeChild: bool | None = Field(
        default=None,
        description="Retry: resume the failed child run in place instead of a fresh child.",
    )


ACTION_FIELDS: dict[str, frozenset[str]] = {
    "retry": frozenset({"stepRecordId", "note", "delaySeconds", "modifications", "resumeChild"}),
    "skip": frozenset({"stepRecordId", "note", "replacementOutput"}),
    "abort": frozenset({"note", "force"}),
}


class Health(BaseModel):
    """``GET /healthz``: the process is alive."""

    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """``GET /readyz``: the database is reachable and its schema is current."""

    status: Literal["ready"] = "ready"
    revision: str | None = Field(description="The database schema revision.")
    workers: int = Field(
        default=0, description="Workers whose last heartbeat is under one lease old."
    )
