"""The one exception hierarchy of Podium.

Every error a user can cause or meet derives from :class:`PodiumError`. The API turns them
into problem+json (``status`` and ``title`` come from the class), the CLI into one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Issue:
    """One problem found in user input, located by a path such as ``steps[2].depends_on[0]``."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class PodiumError(Exception):
    """Base of every error Podium raises on purpose."""

    status: int = 500
    title: str = "Internal error"
    code: str = "internal_error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class InvalidInput(PodiumError):
    """User input that fails validation; carries every issue found, not just the first."""

    status = 422
    title = "Invalid input"
    code = "validation_error"

    def __init__(self, message: str, issues: list[Issue] | None = None) -> None:
        self.issues = issues or []
        super().__init__(message, details={"issues": [vars(i) for i in self.issues]})

    def __str__(self) -> str:
        if not self.issues:
            return self.message
        return self.message + "\n" + "\n".join(f"  {i}" for i in self.issues)


class DefinitionInvalid(InvalidInput):
    """A definition document that does not validate (spec section 2)."""

    code = "definition_invalid"


class ParametersInvalid(InvalidInput):
    """Launch parameters that do not match the definition's declared parameters."""

    code = "parameters_invalid"


class InputResolutionError(PodiumError):
    """A template placeholder in a step's input has no value (never rendered as empty)."""

    status = 422
    title = "Input resolution error"
    code = "input_resolution_error"


class NotFound(PodiumError):
    status = 404
    title = "Not found"
    code = "not_found"


class Conflict(PodiumError):
    """The object is not in a state that allows the request (for example a terminal run)."""

    status = 409
    title = "Conflict"
    code = "conflict"


class InvalidTransition(Conflict):
    """A state change that the transition table of spec section 3 does not allow."""

    code = "invalid_transition"


class LeaseLost(Conflict):
    """A worker tried to commit a step it no longer holds (fencing, target D3)."""

    code = "lease_lost"


class StorageUnavailable(PodiumError):
    """The database cannot be reached or used right now (target D6); worth trying again.

    The API answers 503 with ``Retry-After: retry_after``; a worker keeps what it has to
    write and tries again with backoff.
    """

    status = 503
    title = "Storage unavailable"
    code = "storage_unavailable"
    retry_after: float = 2.0


class ConfigurationError(PodiumError):
    status = 500
    title = "Configuration error"
    code = "configuration_error"


class NoDatabase(ConfigurationError):
    """A command that only reads found no database file where it was pointed (and did not
    create an empty one)."""

    code = "no_database"


class Unauthorized(PodiumError):
    """No API key, or one that is unknown, malformed or revoked (target K1)."""

    status = 401
    title = "Unauthorized"
    code = "unauthorized"


class Forbidden(PodiumError):
    """The key's role does not allow this request (a viewer cannot change anything)."""

    status = 403
    title = "Forbidden"
    code = "forbidden"


class PayloadTooLarge(PodiumError):
    status = 413
    title = "Payload too large"
    code = "payload_too_large"


class RateLimited(PodiumError):
    status = 429
    title = "Too many requests"
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message, details={"retryAfterSeconds": retry_after})
        self.retry_after = retry_after


class ValueInvalid(InvalidInput):
    """A JSON value that breaks a limit or is not JSON at all; ``path`` names where
    (``body.parameters.items[3]``). Raised by :func:`podium.domain.limits.check_json_value`."""

    code = "value_invalid"

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message, [Issue(path, message)])


class ValueTooDeep(ValueInvalid):
    """A value nesting deeper than ``PODIUM_MAX_NESTING_DEPTH``."""

    code = "value_too_deep"


class ValueTooLarge(ValueInvalid):
    """A value larger (as compact JSON, after YAML aliases are expanded) than its limit."""

    code = "value_too_large"


class DuplicateKey(Conflict):
    """A write hit a unique constraint: a concurrent writer created the same object first
    (see ``storage.dialects.is_unique_violation``)."""

    code = "conflict"
