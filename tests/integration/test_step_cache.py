"""The step cache (spec section 9, issue 12) with a real worker, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from podium.agents.base import AgentContext, NonRetryableError
from podium.agents.registry.resolver import LocalAgents
from podium.domain.definition import parse_definition
from podium.engine.cache import StepCache
from podium.engine.launcher import launch
from podium.settings import Settings
from podium.storage.cache import CacheFilter
from podium.storage.store import SqlStore
from podium.storage.tables import cache_entries
from tests.support import fast_settings, running_worker, wait_for, wait_terminal


@pytest.fixture
def store(db_url: str) -> Any:
    s = SqlStore.open(db_url)
    yield s
    s.close()


class Counting:
    """A python agent that counts its calls (optionally slow, failing or unmappable)."""

    def __init__(self, seconds: float = 0.0, result: Any = None, fail: bool = False) -> None:
        self.calls = 0
        self.seconds = seconds
        self.result = result
        self.fail = fail
        self._lock = threading.Lock()

    async def call(self, input: Any, context: AgentContext) -> Any:
        with self._lock:
            self.calls += 1
        if self.seconds:
            await asyncio.sleep(self.seconds)
        if self.fail:
            raise NonRetryableError("no")
        return self.result if self.result is not None else {"echo": input}


def doc(cache: str = "{enabled: true, ttlSeconds: 3600}", mapping: str = "") -> str:
    return f"""
metadata: {{name: cached, version: 1.0.0}}
orchestration:
  parameters: [{{name: topic, type: string, required: true}}]
  steps:
    - id: heavy
      agent: heavy
      input: {{topic: "{{{{ parameters.topic }}}}"}}
      cache: {cache}
      {mapping}
"""


def settings_for(url: str) -> Settings:
    """Leases long enough that a loaded machine never reclaims a live step: the agent call
    counts below are exact."""
    return fast_settings(url, lease_seconds=15.0, heartbeat_seconds=1.0)


def agents_with(agent: Counting) -> LocalAgents:
    agents = LocalAgents()
    agents.add_python("heavy", agent.call)
    return agents


async def run_once(
    store: SqlStore,
    url: str,
    agent: Counting,
    *,
    text: str | None = None,
    topic: str = "tides",
    org: str = "acme",
    metadata: dict[str, Any] | None = None,
) -> str:
    defn = parse_definition(text or doc())
    run_id = launch(store, defn, {"topic": topic}, organization=org, metadata=metadata)
    async with running_worker(store, settings_for(url), agents_with(agent)):
        await wait_terminal(store, run_id)
    return run_id


def heavy_step(store: SqlStore, run_id: str) -> Any:
    return next(s for s in store.steps_of(run_id) if s.step_id == "heavy")


async def test_a_cached_rerun_completes_without_calling_the_agent(
    store: SqlStore, db_url: str
) -> None:
    agent = Counting()
    first = await run_once(store, db_url, agent)
    second = await run_once(store, db_url, agent)
    assert agent.calls == 1
    assert store.get_run(second).status == "completed"
    one, two = heavy_step(store, first), heavy_step(store, second)
    assert two.output == one.output
    assert one.output["output"] == {"echo": {"topic": "tides"}}
    cache = two.metadata["runtime"]["cache"]
    assert cache["hit"] is True
    assert cache["hits"] == 1
    assert cache["sourceRunId"] == first
    assert cache["fingerprint"] == one.metadata["runtime"]["cache"]["fingerprint"]
    stored = datetime.fromisoformat(cache["storedAt"])
    assert datetime.fromisoformat(cache["expiresAt"]) - stored == timedelta(seconds=3600)
    done = [e for e in store.events_after(second) if e.type == "orchestration.step.completed"]
    assert done[0].data["cached"] is True
    assert one.metadata["runtime"]["cache"]["hit"] is False
    [entry] = store.cache.list_entries("acme", CacheFilter(definition="cached"))
    assert (entry.hits, entry.source_run_id, entry.step_id) == (1, first, "heavy")


async def test_another_input_or_organization_is_a_miss(store: SqlStore, db_url: str) -> None:
    agent = Counting()
    await run_once(store, db_url, agent)
    await run_once(store, db_url, agent, topic="waves")
    await run_once(store, db_url, agent, org="beta")
    assert agent.calls == 3
    assert len(store.cache.list_entries("acme", CacheFilter())) == 2
    assert len(store.cache.list_entries("beta", CacheFilter())) == 1


async def test_disabled_caching_stores_nothing(store: SqlStore, db_url: str) -> None:
    agent = Counting()
    text = doc("{enabled: false}")
    await run_once(store, db_url, agent, text=text)
    await run_once(store, db_url, agent, text=text)
    assert agent.calls == 2
    assert store.cache.list_entries("acme", CacheFilter()) == []


async def test_failed_and_unmappable_results_are_never_cached(store: SqlStore, db_url: str) -> None:
    failing = Counting(fail=True)
    run_id = await run_once(store, db_url, failing)
    assert store.get_run(run_id).status == "failed"
    unmappable = Counting(result={"nothing": 1})
    text = doc(mapping='output_mapping: {x: "$.artifacts[5].text"}')
    run_id = await run_once(store, db_url, unmappable, text=text)
    assert heavy_step(store, run_id).status == "failed"
    assert store.cache.list_entries("acme", CacheFilter()) == []
    # and the failed owners released their claim: the next run computes at once
    again = Counting()
    await run_once(store, db_url, again)
    assert again.calls == 1


async def test_an_expired_entry_is_never_served_and_the_sweeper_deletes_it(
    store: SqlStore, db_url: str
) -> None:
    agent = Counting()
    await run_once(store, db_url, agent)
    past = datetime.now(UTC) - timedelta(seconds=1)
    store.db.write(lambda c: c.execute(cache_entries.update().values(expires_at=past)))
    await run_once(store, db_url, agent)
    assert agent.calls == 2  # the expired entry was not served, and was replaced
    [entry] = store.cache.list_entries("acme", CacheFilter())
    assert entry.expires_at is not None
    assert entry.expires_at > datetime.now(UTC)
    store.db.write(lambda c: c.execute(cache_entries.update().values(expires_at=past)))
    assert store.cache.sweep(datetime.now(UTC)) == 1
    assert store.cache.list_entries("acme", CacheFilter()) == []


async def test_refresh_recomputes_and_resets_the_ttl(store: SqlStore, db_url: str) -> None:
    agent = Counting()
    first = await run_once(store, db_url, agent)
    await run_once(store, db_url, agent)  # one hit
    [before] = store.cache.list_entries("acme", CacheFilter())
    third = await run_once(store, db_url, agent, metadata={"refreshCache": True})
    assert agent.calls == 2
    [after] = store.cache.list_entries("acme", CacheFilter())
    assert after.source_run_id == third != first
    assert after.hits == 0
    assert after.stored_at > before.stored_at
    assert after.expires_at is not None
    assert before.expires_at is not None
    assert after.expires_at > before.expires_at


@pytest.mark.parametrize("runs", [10])
async def test_single_flight_ten_identical_runs_make_one_agent_call(
    store: SqlStore, db_url: str, runs: int
) -> None:
    """Issue 12 single flight: 10 concurrent identical heavy steps -> 1 call and 9 hits."""
    agent = Counting(seconds=1.0)
    defn = parse_definition(doc())
    ids = [launch(store, defn, {"topic": "tides"}, organization="acme") for _ in range(runs)]
    async with running_worker(store, settings_for(db_url), agents_with(agent)):
        for run_id in ids:
            assert (await wait_terminal(store, run_id, timeout=60)).status == "completed"
    assert agent.calls == 1
    hits = [heavy_step(store, r).metadata["runtime"]["cache"]["hit"] for r in ids]
    assert sorted(hits) == [False] + [True] * (runs - 1)
    [entry] = store.cache.list_entries("acme", CacheFilter())
    assert entry.hits == runs - 1


def test_a_crashed_owners_claim_dies_with_its_step_lease(store: SqlStore) -> None:
    """Single flight: nobody waits forever for an owner that is gone."""
    now = datetime.now(UTC)
    defn = parse_definition(doc())
    run_id = launch(store, defn, {"topic": "x"}, organization="acme")
    [claimed] = store.claim(worker_id="w1", capacity=1, lease_seconds=30)
    assert claimed.run_id == run_id
    owner = claimed.step_record_id
    assert store.cache.claim_flight("acme", "f" * 64, owner, lease_seconds=600, now=now)
    assert not store.cache.claim_flight("acme", "f" * 64, "other", lease_seconds=600, now=now)
    assert store.cache.flight_live("acme", "f" * 64, now)
    # the owner's worker dies: its step lease runs out (no heartbeat)
    later = now + timedelta(seconds=31)
    assert not store.cache.flight_live("acme", "f" * 64, later)
    assert store.cache.claim_flight("acme", "f" * 64, "other", lease_seconds=600, now=later)
    # another organization's flight is another flight
    assert store.cache.claim_flight("beta", "f" * 64, "third", lease_seconds=600, now=now)


async def test_an_unfingerprintable_input_runs_uncached_with_a_warning_event(
    store: SqlStore, db_url: str
) -> None:
    defn = parse_definition(doc())
    run_id = launch(store, defn, {"topic": "x"}, organization="acme")
    [claimed] = store.claim(worker_id="w1", capacity=1, lease_seconds=30)
    agent = agents_with(Counting()).resolve("heavy", "acme")
    decision = await StepCache(store.cache).decide(
        claimed, "heavy", agent, {"topic": float("nan")}, 5.0
    )
    assert decision.write is None
    assert decision.hit is None
    [warning] = [e for e in store.events_after(run_id) if e.type == "orchestration.step.progress"]
    assert warning.data["code"] == "cache_unfingerprintable"
    assert "input.topic" in warning.data["message"]


def test_admin_filters_and_delete_count(store: SqlStore) -> None:
    now = datetime.now(UTC)
    rows = [
        {
            "organization_slug": org,
            "fingerprint": f"{i:064d}",
            "definition_name": name,
            "step_id": step,
            "agent": "a",
            "output": {"i": i},
            "stored_at": now - timedelta(hours=i),
            "expires_at": None,
            "hits": i,
            "source_run_id": "r",
            "source_step_record_id": "s",
        }
        for i, (org, name, step) in enumerate(
            [("acme", "d1", "s1"), ("acme", "d1", "s2"), ("acme", "d2", "s1"), ("beta", "d1", "s1")]
        )
    ]
    store.db.write(lambda c: c.execute(sa.insert(cache_entries), rows))
    assert len(store.cache.list_entries("acme", CacheFilter(definition="d1"))) == 2
    assert len(store.cache.list_entries("acme", CacheFilter(step_id="s1"))) == 2
    assert store.cache.stats("acme", now)["hits"] == 0 + 1 + 2
    old = CacheFilter(older_than=now - timedelta(minutes=30))
    assert store.cache.delete_entries("acme", old) == 2
    assert store.cache.delete_entries("acme", CacheFilter(fingerprint=f"{0:064d}")) == 1
    assert len(store.cache.list_entries("beta", CacheFilter())) == 1


async def test_a_cache_hit_still_stops_at_its_checkpoint(store: SqlStore, db_url: str) -> None:
    """A hit completes the step's work without the agent, and the step still waits for its
    human approval (spec section 9)."""
    agent = Counting()
    await run_once(store, db_url, agent)
    gated = doc().replace(
        "      cache: {enabled: true, ttlSeconds: 3600}",
        "      cache: {enabled: true, ttlSeconds: 3600}\n"
        '      checkpoint_after: {question: "Use the cached result?"}',
    )
    run_id = launch(store, parse_definition(gated), {"topic": "tides"}, organization="acme")
    async with running_worker(store, settings_for(db_url), agents_with(agent)):
        await wait_for(lambda: store.get_run(run_id).status, lambda s: s == "checkpoint")
    assert agent.calls == 1
    step = heavy_step(store, run_id)
    assert step.status == "checkpoint_pending"
    assert step.metadata["runtime"]["cache"]["hit"] is True
    [approval] = store.pending_approvals(run_id)
    assert approval.question == "Use the cached result?"
