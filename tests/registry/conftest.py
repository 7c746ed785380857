"""Fixtures of the registry tests: a store on both databases, contexts, a fake resolver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from podium.agents.base import AgentContext
from podium.net.urlguard import UrlGuard
from podium.storage.store import SqlStore


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    s = SqlStore.open(db_url)
    yield s
    s.close()


def context(slug: str = "x", organization: str = "acme", step_id: str = "s1") -> AgentContext:
    return AgentContext(
        run_id="run-1",
        step_id=step_id,
        step_record_id=f"rec-{step_id}",
        organization_slug=organization,
        attempt=1,
        generation=1,
        idempotency_key=f"key-{step_id}",
        agent_slug=slug,
    )


class FakeDns:
    """A resolver answering from a table that tests may change (DNS rebinding)."""

    def __init__(self, table: dict[str, list[str]] | None = None) -> None:
        self.table = dict(table or {})
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.table:
            raise OSError(f"[Errno -2] Name or service not known: {host}")
        return list(self.table[host])


def guard(dns: FakeDns | None = None, **kwargs: object) -> UrlGuard:
    return UrlGuard(resolver=dns or FakeDns(), **kwargs)  # type: ignore[arg-type]
