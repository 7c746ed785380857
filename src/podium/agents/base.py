"""The agent port: what the engine needs from anything that does a step's work.

An agent receives the step's resolved input and an :class:`AgentContext`, and returns a
normalized result (the ``TaskResponse`` of spec section 7) or raises :class:`AgentError`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from podium.domain.outcomes import ErrorCode, StepError, is_retryable


@dataclass(frozen=True)
class AgentContext:
    """What an agent call knows about the step it serves."""

    run_id: str
    step_id: str
    step_record_id: str
    organization_slug: str
    attempt: int
    generation: int
    idempotency_key: str
    agent_slug: str
    # metadata.runtime of the step as claimed: what an earlier attempt of this generation
    # recorded (for example ``a2a.taskId``) so that a reclaimed step can re-attach
    runtime: Mapping[str, Any] = field(default_factory=dict)
    # records ``metadata.runtime.<key>`` durably before the agent waits (fenced by the
    # claim: raises LeaseLost if the step was taken back)
    save_runtime: Callable[[str, Any], Awaitable[None]] | None = None
    # reports what the agent says while it works (an A2A ``WORKING`` status with a message)
    # as an ``orchestration.step.progress`` event; rate-limited per step, never raises
    report_progress: Callable[[dict[str, Any]], Awaitable[None]] | None = None


class AgentError(Exception):
    """An agent call that failed; ``code`` is one of the error codes of spec section 7.

    Python agents raise it to say how a failure is classified; any other exception is an
    ``agent_execution_error`` (retryable).
    """

    def __init__(
        self,
        code: ErrorCode | str,
        message: str,
        *,
        retryable: bool | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = str(code)
        self.message = message
        self.retryable = is_retryable(self.code) if retryable is None else retryable
        self.details = details or {}

    def to_step_error(self) -> StepError:
        return StepError(self.code, self.message, self.retryable, self.details)


class NonRetryableError(AgentError):
    """Convenience for python agents: fail the step at once, without retries."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(ErrorCode.AGENT_EXECUTION_ERROR, message, retryable=False, details=details)


class Agent(Protocol):
    """Something that runs a step's work."""

    slug: str
    kind: str

    async def invoke(self, input: Any, context: AgentContext) -> dict[str, Any]:
        """Run once and return the normalized result (a ``TaskResponse`` dict)."""
        ...


class AgentResolver(Protocol):
    """Finds the agent a step names, for the step's organization."""

    def resolve(self, slug: str, organization_slug: str) -> Agent:
        """Return the agent or raise :class:`AgentError` (``agent_not_found``, ...)."""
        ...


def task_response(
    *,
    slug: str,
    output: Any,
    started: float,
    ended: float,
    artifacts: list[Any] | None = None,
    message: str | None = None,
    card_version: str | None = None,
) -> dict[str, Any]:
    """A successful normalized result (spec section 7)."""
    return {
        "success": True,
        "output": output,
        "artifacts": artifacts or [],
        "message": message,
        "error": None,
        "agent": {"slug": slug, "cardVersion": card_version},
        "a2a": None,
        "timings": {"durationMs": round((ended - started) * 1000, 3)},
    }
