"""Where the engine finds agents by slug.

This in-process registry holds python agents per organization, with ``global`` visible to
every organization and the built-in demo agents registered there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from podium.agents.base import Agent, AgentError
from podium.agents.demo import BUILTIN_AGENTS
from podium.agents.python import PythonAgent
from podium.domain.outcomes import ErrorCode

GLOBAL = "global"


class LocalAgents:
    """An :class:`~podium.agents.base.AgentResolver` over agents registered in this process."""

    def __init__(self, *, builtins: bool = True) -> None:
        self._agents: dict[tuple[str, str], Agent] = {}
        if builtins:
            for slug, fn in BUILTIN_AGENTS.items():
                self.add(PythonAgent(slug, fn))

    def add(self, agent: Agent, organization_slug: str = GLOBAL) -> None:
        self._agents[(organization_slug, agent.slug)] = agent

    def add_python(
        self, slug: str, target: str | Callable[..., Any], organization_slug: str = GLOBAL
    ) -> None:
        """Register ``module:function`` (or a callable) as python agent ``slug``."""
        agent = (
            PythonAgent.from_target(slug, target)
            if isinstance(target, str)
            else PythonAgent(slug, target)
        )
        self.add(agent, organization_slug)

    def add_many(self, mapping: Mapping[str, str], organization_slug: str = GLOBAL) -> None:
        for slug, target in mapping.items():
            self.add_python(slug, target, organization_slug)

    def resolve(self, slug: str, organization_slug: str) -> Agent:
        agent = self._agents.get((organization_slug, slug)) or self._agents.get((GLOBAL, slug))
        if agent is None:
            raise AgentError(
                ErrorCode.AGENT_NOT_FOUND,
                f"agent {slug!r} is not registered for organization {organization_slug!r} "
                "or global",
            )
        return agent

    def slugs(self) -> list[str]:
        return sorted({slug for _, slug in self._agents})
