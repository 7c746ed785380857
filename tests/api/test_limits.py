"""L1: bodies above the limit get 413, definitions above size limits and cycles 422.
L2: over the rate limit, 429 with ``Retry-After``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from podium.api.limits import TokenBuckets
from podium.errors import RateLimited
from podium.settings import Settings
from podium.storage.store import SqlStore
from tests.api.conftest import KeyMaker
from tests.api.helpers import YAML, api, assert_problem, bearer

LIMIT = 4096


def many_steps(count: int, padding: int = 0) -> str:
    lines = [f"metadata: {{name: big, version: 1.0.0, description: '{'x' * padding}'}}"]
    lines += ["orchestration:", "  steps:"]
    lines += [f"    - {{id: s{i}, agent: echo}}" for i in range(count)]
    return "\n".join(lines) + "\n"


async def test_a_declared_body_above_the_limit_gets_413(
    store: SqlStore, settings: Settings, acme: dict[str, str]
) -> None:
    """L1 (Content-Length)."""
    async with api(store, settings, max_body_bytes=LIMIT) as client:
        response = await client.post(
            "/api/definitions", content=b"x" * (LIMIT + 1), headers=acme | YAML
        )
        assert str(LIMIT) in assert_problem(response, 413, "payload_too_large")["detail"]
        fits = await client.post("/api/definitions/validate", content=b"a: 1", headers=acme | YAML)
        assert fits.status_code == 200


async def test_a_streamed_body_is_counted_as_it_arrives(
    store: SqlStore, settings: Settings, acme: dict[str, str]
) -> None:
    """L1 (chunked, no Content-Length)."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"y" * 1024

    async with api(store, settings, max_body_bytes=LIMIT) as client:
        response = await client.post(
            "/api/orchestrations/x/actions/abort",
            content=chunks(),
            headers=acme | {"content-type": "application/json"},
        )
        assert "content-length" not in response.request.headers
        assert_problem(response, 413)


async def test_definitions_above_the_size_limits_get_422(
    store: SqlStore, settings: Settings, acme: dict[str, str]
) -> None:
    """L1 (definition limits): too many steps; a document above max_document_bytes."""
    async with api(store, settings, max_body_bytes=4_000_000) as client:
        steps = await client.post("/api/definitions", content=many_steps(1001), headers=acme | YAML)
        body = assert_problem(steps, 422, "definition_invalid")
        assert any("limit" in i["message"] for i in body["issues"])
        huge = many_steps(2, padding=1_100_000)
        size = await client.post("/api/definitions", content=huge, headers=acme | YAML)
        assert any(
            "max_document_bytes" in i["message"] for i in assert_problem(size, 422)["issues"]
        )
        listed = await client.get("/api/definitions", headers=acme)
        assert listed.json() == []


async def test_cyclic_definitions_get_422(client: httpx.AsyncClient, acme: dict[str, str]) -> None:
    """L1 (cycles)."""
    cycle = """
metadata: {name: loop, version: 1.0.0}
orchestration:
  steps:
    - {id: a, agent: echo, depends_on: [c]}
    - {id: b, agent: echo, depends_on: [a]}
    - {id: c, agent: echo, depends_on: [b]}
"""
    response = await client.post("/api/definitions", content=cycle, headers=acme | YAML)
    issues = assert_problem(response, 422, "definition_invalid")["issues"]
    assert any("cycle" in i["message"] and "a" in i["message"] for i in issues)


async def test_over_the_rate_limit_requests_get_429_with_retry_after(
    store: SqlStore, settings: Settings, make_key: KeyMaker
) -> None:
    """L2: per key; another key, and the probes, are not affected."""
    first, second = bearer(make_key("acme")), bearer(make_key("acme"))
    async with api(store, settings, rate_limit=3) as client:
        for _ in range(3):
            assert (await client.get("/api/orchestrations", headers=first)).status_code == 200
        limited = await client.get("/api/orchestrations", headers=first)
        body = assert_problem(limited, 429, "rate_limited")
        assert limited.headers["retry-after"] == "20"  # one token per 20 s at 3 per minute
        assert body["retryAfterSeconds"] == pytest.approx(20, abs=0.5)
        assert (await client.get("/api/orchestrations", headers=second)).status_code == 200
        assert (await client.get("/healthz")).status_code == 200


async def test_without_keys_the_limit_is_per_client_address(
    store: SqlStore, settings: Settings
) -> None:
    """L2 (development mode); failed authentications count against the address too."""
    async with api(store, settings, require_keys=None, rate_limit=2) as client:
        assert (await client.get("/api/orchestrations")).status_code == 200
        assert_problem(await client.get("/api/orchestrations", headers=bearer("pod_x_y")), 401)
        limited = await client.get("/api/orchestrations")
        assert_problem(limited, 429)
        assert int(limited.headers["retry-after"]) >= 1


def test_token_buckets_refill_with_time() -> None:
    now = [0.0]
    buckets = TokenBuckets(60, clock=lambda: now[0])  # one token per second
    assert all(buckets.take("k") == 0.0 for _ in range(60))
    assert buckets.take("k") == pytest.approx(1.0)
    now[0] += 0.5
    assert buckets.take("k") == pytest.approx(0.5)
    now[0] += 0.5
    assert buckets.take("k") == 0.0
    assert buckets.take("other") == 0.0
    with pytest.raises(RateLimited) as caught:
        buckets.check("k")
    assert caught.value.retry_after == pytest.approx(1.0)


def test_token_buckets_stay_bounded() -> None:
    now = [0.0]
    buckets = TokenBuckets(60, clock=lambda: now[0], max_buckets=3)
    for name in "abcd":
        buckets.take(name)
    assert len(buckets) == 3
    for _ in range(59):
        buckets.take("d")
    now[0] += 0.1
    assert buckets.take("d") > 0  # the busy bucket was kept
