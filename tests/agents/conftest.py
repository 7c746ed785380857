"""Fixtures of the agent tests: the A2A test agents (one server per module) and steps."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from podium.agents.base import AgentContext
from tests.agents.a2a_servers import AgentFarm, serve_agent_farm


@pytest.fixture(scope="module")
def farm() -> Iterator[AgentFarm]:
    with serve_agent_farm() as agents:
        yield agents


class FakeStep:
    """A step as an agent sees it, with a runtime store that records what the agent saves
    (``saved`` is set at each save)."""

    def __init__(self, *, generation: int = 1, runtime: dict[str, Any] | None = None) -> None:
        self.run_id = f"run-{uuid.uuid4().hex[:10]}"
        self.step_record_id = f"rec-{uuid.uuid4().hex[:10]}"
        self.generation = generation
        self.runtime: dict[str, Any] = dict(runtime or {})
        self.saves = 0
        self.saved = asyncio.Event()

    @property
    def key(self) -> str:
        return f"{self.run_id}:{self.step_record_id}:{self.generation}"

    async def save(self, key: str, value: Any) -> None:
        self.runtime[key] = value
        self.saves += 1
        self.saved.set()

    def context(
        self, *, attempt: int = 1, runtime: dict[str, Any] | None = None, slug: str = "remote"
    ) -> AgentContext:
        """The context of an attempt; ``runtime`` is what its claim found (default none)."""
        return AgentContext(
            run_id=self.run_id,
            step_id="work",
            step_record_id=self.step_record_id,
            organization_slug="acme",
            attempt=attempt,
            generation=self.generation,
            idempotency_key=self.key,
            agent_slug=slug,
            runtime=dict(runtime or {}),
            save_runtime=self.save,
        )


async def wait_set(event: Any, timeout: float = 10.0) -> bool:
    """Wait (without blocking the loop) for a ``threading.Event`` set by a server thread."""
    return bool(await asyncio.to_thread(event.wait, timeout))
