"""Step outcomes: the normalized agent result and the error codes with their classification
(spec sections 4 and 7)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    AGENT_NOT_FOUND = "agent_not_found"
    AGENT_DISABLED = "agent_disabled"
    ROUTING_SHOWSTOPPER = "routing_showstopper"
    AGENT_EXECUTION_ERROR = "agent_execution_error"
    AGENT_REJECTED = "agent_rejected"
    AGENT_TIMEOUT = "agent_timeout"
    AGENT_UNREACHABLE = "agent_unreachable"
    AGENT_AUTH_REQUIRED = "agent_auth_required"
    AGENT_INPUT_REQUIRED = "agent_input_required"
    INPUT_RESOLUTION_ERROR = "input_resolution_error"
    OUTPUT_MAPPING_ERROR = "output_mapping_error"
    VALIDATION_ERROR = "validation_error"
    WORKER_LOST = "worker_lost"
    RUN_TIMEOUT = "run_timeout"
    CHILD_ORCHESTRATION_FAILED = "child_orchestration_failed"
    CHILD_ORCHESTRATION_ABORTED = "child_orchestration_aborted"
    AGENT_OUTPUT_INVALID = "agent_output_invalid"
    INTERNAL_ERROR = "internal_error"
    # the child definition (name and version range) has no active version (issue 11)
    CHILD_DEFINITION_UNAVAILABLE = "child_definition_unavailable"
    # a human checkpoint expired with onTimeout: fail (spec section 5)
    CHECKPOINT_EXPIRED = "checkpoint_expired"


RETRYABLE_CODES = frozenset(
    {ErrorCode.AGENT_EXECUTION_ERROR, ErrorCode.AGENT_TIMEOUT, ErrorCode.AGENT_UNREACHABLE}
)


def is_retryable(code: str, http_status: int | None = None) -> bool:
    """Classification of spec section 4: transient failures retry, the rest fail at once."""
    if http_status is not None and (http_status >= 500 or http_status == 429):
        return True
    return code in RETRYABLE_CODES


@dataclass(frozen=True)
class StepError:
    """A failed attempt's error, as stored on the step and in the ``TaskResponse``."""

    code: str
    message: str
    retryable: bool
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, code: ErrorCode | str, message: str, **details: Any) -> StepError:
        return cls(code=str(code), message=message, retryable=is_retryable(code), details=details)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "retryable": self.retryable,
            "details": self.details,
        }
