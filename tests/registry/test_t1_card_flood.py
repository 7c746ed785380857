"""T1: one tenant cannot stall the others. Agent Card fetches time out
(``PODIUM_AGENT_CARD_TIMEOUT_SECONDS``) and run a few at a time per organization, beside the
threads that serve other requests."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from podium.agents.registry.admission import AgentChecks, fetch_card
from podium.api.app import create_app
from podium.net.urlguard import UrlGuard, parse_allowlist
from podium.settings import Settings
from podium.storage.store import SqlStore
from tests.api.helpers import assert_problem, bearer, serving
from tests.support import fast_settings

CARD_TIMEOUT = 2.0


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A loopback URL whose server accepts connections (the kernel completes them) and
    never answers a byte."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(256)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


class CountingFetch:
    """The real card fetch, counting how many run at once."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0

    async def __call__(self, url: str, guard: UrlGuard) -> dict[str, Any]:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            return await fetch_card(url, guard)
        finally:
            self.now -= 1


def checks(fetch: CountingFetch, **overrides: float) -> AgentChecks:
    values: dict[str, float] = {"card_timeout": CARD_TIMEOUT, "card_concurrency": 4}
    values.update(overrides)
    return AgentChecks(
        url_guard=UrlGuard(allowed=parse_allowlist(["loopback"])),
        fetch_card=fetch,
        card_timeout=values["card_timeout"],
        card_concurrency=int(values["card_concurrency"]),
    )


def app_settings(db_url: str) -> Settings:
    return fast_settings(db_url, require_keys=True, rate_limit=100_000)


async def test_45_hanging_registrations_do_not_stall_another_organization(
    store: SqlStore, db_url: str, silent_url: str
) -> None:
    """T1: 45 concurrent registrations by acme to a URL that never answers; meanwhile
    globex's ``GET /api/orchestrations`` answers within 1 s, and every registration is
    answered (422 timeout or 429) within the card timeout and a margin."""
    _, acme_key = store.create_key(organization="acme", role="admin", name="admin@acme")
    _, globex_key = store.create_key(organization="globex", role="admin", name="admin@globex")
    app = create_app(app_settings(db_url), store=store, worker=False)
    fetch = CountingFetch()
    app.state.agent_checks = checks(fetch)
    async with serving(app) as client:

        async def register(i: int) -> httpx.Response:
            return await client.post(
                "/api/admin/agents",
                json={"slug": f"hang-{i}", "url": f"{silent_url}/a{i}"},
                headers=bearer(acme_key),
                timeout=60,
            )

        started = time.monotonic()
        flood = [asyncio.create_task(register(i)) for i in range(45)]
        await asyncio.sleep(0.3)  # let the flood reach the server first
        latencies = []
        for _ in range(3):
            t0 = time.monotonic()
            response = await client.get("/api/orchestrations", headers=bearer(globex_key))
            latencies.append(time.monotonic() - t0)
            assert response.status_code == 200, response.text
        responses = await asyncio.gather(*flood)
        elapsed = time.monotonic() - started
    assert max(latencies) < 1.0, latencies
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {422, 429}, statuses
    timed_out = [r for r in responses if r.status_code == 422]
    assert timed_out, statuses
    assert fetch.most == 4, fetch.most  # never more than the organization's cap at once
    problem = assert_problem(timed_out[0], 422, "agent_card_unavailable")
    assert problem["errorCode"] == "agent_timeout", problem
    limited = [r for r in responses if r.status_code == 429]
    assert all("Retry-After" in r.headers for r in limited)
    assert elapsed < 60, elapsed  # each answered, none held for the old 30 s
    assert store.find_agent("acme", "hang-0") is None


async def test_the_card_timeout_bounds_one_registration(
    store: SqlStore, db_url: str, silent_url: str
) -> None:
    """T1: a single registration to an agent that never answers ends after the timeout."""
    _, key = store.create_key(organization="acme", role="admin", name="admin@acme")
    app = create_app(app_settings(db_url), store=store, worker=False)
    app.state.agent_checks = checks(CountingFetch(), card_timeout=1.0)
    async with serving(app) as client:
        t0 = time.monotonic()
        response = await client.post(
            "/api/admin/agents",
            json={"slug": "hang", "url": silent_url},
            headers=bearer(key),
            timeout=60,
        )
        took = time.monotonic() - t0
    problem = assert_problem(response, 422, "agent_card_unavailable")
    assert "within 1 s" in problem["issues"][0]["message"], problem
    assert 0.9 < took < 5.0, took


def test_the_card_timeout_and_cap_come_from_the_environment() -> None:
    """T1: ``PODIUM_AGENT_CARD_TIMEOUT_SECONDS`` (default 5) and
    ``PODIUM_AGENT_CARD_CONCURRENCY`` (default 4)."""
    default = AgentChecks.from_env({}, trusted=False)
    assert (default.card_timeout, default.card_concurrency) == (5.0, 4)
    env = {"PODIUM_AGENT_CARD_TIMEOUT_SECONDS": "1.5", "PODIUM_AGENT_CARD_CONCURRENCY": "2"}
    configured = AgentChecks.from_env(env, trusted=False)
    assert (configured.card_timeout, configured.card_concurrency) == (1.5, 2)
