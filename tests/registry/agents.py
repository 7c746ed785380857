"""Python agents that the registry tests register by ``module:function``."""

from __future__ import annotations

import asyncio
from typing import Any

from podium.agents.base import AgentContext, AgentError


def tag_acme(input: Any) -> dict[str, Any]:
    return {"from": "acme", "input": input}


def tag_global(input: Any) -> dict[str, Any]:
    return {"from": "global", "input": input}


def shout(input: Any) -> dict[str, Any]:
    text = input.get("text", "") if isinstance(input, dict) else str(input)
    return {"shouted": text.upper()}


async def broken(input: Any) -> None:
    raise AgentError("agent_rejected", "broken agent refuses")


class Gauge:
    """Calls in flight, the most seen at once, and a gate that holds every call until
    opened. Shared by the agents below (one test at a time uses them)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.now = 0
        self.peak = 0
        self.calls = 0
        self.gate = asyncio.Event()
        self.changed = asyncio.Event()


GAUGE = Gauge()


async def gated(input: Any, context: AgentContext) -> dict[str, Any]:
    """Counts itself in flight, then waits for ``GAUGE.gate``."""
    GAUGE.now += 1
    GAUGE.calls += 1
    GAUGE.peak = max(GAUGE.peak, GAUGE.now)
    GAUGE.changed.set()
    try:
        await GAUGE.gate.wait()
    finally:
        GAUGE.now -= 1
    return {"step": context.step_id}


async def forever(input: Any) -> None:
    """Never answers (until cancelled)."""
    await asyncio.Event().wait()
