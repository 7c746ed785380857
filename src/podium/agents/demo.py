"""Built-in demo agents (kind ``python``, organization ``global``) that need no network.

They read text from ``input.text`` or ``input.userMessage`` (or the input itself when it is a
string) and are meant for examples, tests and benchmarks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from podium.agents.base import AgentContext, AgentError
from podium.domain.outcomes import ErrorCode


def _text(input: Any) -> str:
    if isinstance(input, str):
        return input
    if isinstance(input, dict):
        for key in ("text", "userMessage", "message"):
            value = input.get(key)
            if value is not None:
                return value if isinstance(value, str) else str(value)
    raise AgentError(
        ErrorCode.AGENT_REJECTED, "input has no text (give input.text or input.userMessage)"
    )


async def echo(input: Any) -> Any:
    """Return the input unchanged."""
    return input


async def noop(input: Any) -> None:
    """Do nothing (benchmarks)."""
    return None


async def uppercase(input: Any) -> dict[str, str]:
    """``{text}`` in upper case."""
    return {"text": _text(input).upper()}


async def word_count(input: Any) -> dict[str, int]:
    """Count the words and characters of the text."""
    text = _text(input)
    return {"words": len(text.split()), "characters": len(text)}


async def sleep(input: Any) -> dict[str, float]:
    """Wait ``input.seconds`` (default 1) and say so."""
    seconds = float(input.get("seconds", 1)) if isinstance(input, dict) else 1.0
    await asyncio.sleep(seconds)
    return {"slept": seconds}


async def flaky(input: Any, context: AgentContext) -> dict[str, Any]:
    """Fail the first ``input.failTimes`` attempts (default 1), then succeed."""
    fail_times = int(input.get("failTimes", 1)) if isinstance(input, dict) else 1
    if context.attempt <= fail_times:
        raise AgentError(
            ErrorCode.AGENT_EXECUTION_ERROR,
            f"flaky agent fails attempt {context.attempt} of the first {fail_times}",
        )
    return {"attempt": context.attempt, "input": input}


async def fail(input: Any, context: AgentContext) -> None:
    """Always fail with a retryable ``agent_execution_error``."""
    message = input.get("message") if isinstance(input, dict) else None
    raise AgentError(
        ErrorCode.AGENT_EXECUTION_ERROR, message or f"fail agent failed attempt {context.attempt}"
    )


async def reject(input: Any) -> None:
    """Always refuse the task (``agent_rejected``, not retryable)."""
    raise AgentError(ErrorCode.AGENT_REJECTED, "reject agent refuses every task")


BUILTIN_AGENTS: dict[str, Callable[..., Any]] = {
    "echo": echo,
    "noop": noop,
    "uppercase": uppercase,
    "word-count": word_count,
    "sleep": sleep,
    "flaky": flaky,
    "fail": fail,
    "reject": reject,
}
