"""Runbook section 5, cache part: a low hit rate per step and an expired-entry backlog,
produced for real or injected, on both databases, with evidence, fix, and the fix
resolving it."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from podium.cli.main import run_cli
from podium.doctor.facts import Facts
from podium.doctor.runner import diagnose
from podium.engine.launcher import launch
from podium.settings import Settings
from podium.storage.store import SqlStore
from podium.storage.tables import cache_entries, steps
from tests.doctor.conftest import execute, findings, options
from tests.support import definition, running_worker, wait_for, wait_terminal

HIT_RATE = "perf.cache-hit-rate"
BACKLOG = "perf.cache-expired-backlog"
CACHED = """
metadata: {name: crunch, version: 1.0.0}
orchestration:
  execution: {caching: {enabled: true, ttlSeconds: 60}}
  steps:
    - {id: crunch, agent: echo, input: {text: same}}
"""


@pytest.fixture
def patient(settings: Settings) -> Settings:
    """A lease long enough that a worker registered by the test is still live when the
    doctor looks, however loaded the machine."""
    return settings.model_copy(update={"lease_seconds": 120.0})


def _fingerprint(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def _cached_completions(store: SqlStore, requests: list[tuple[int, bool]]) -> list[str]:
    """One completed run of ``crunch`` per (fingerprint number, hit), its step's
    ``metadata.runtime.cache`` as a completion with caching on records it."""
    run_ids = []
    now = datetime.now(UTC)
    for k, (fp, hit) in enumerate(requests):
        run_id = launch(store, definition(CACHED), {}, organization="acme")
        queued = now - timedelta(minutes=60 - k % 50)
        runtime = {"cache": {"fingerprint": _fingerprint(fp), "hit": hit, "hits": 0}}
        execute(
            store,
            sa.update(steps)
            .where(steps.c.run_id == run_id)
            .values(
                status="completed",
                queued_at=queued,
                started_at=queued,
                ended_at=queued + timedelta(seconds=1),
                metadata={"runtime": runtime},
            ),
        )
        run_ids.append(run_id)
    return run_ids


async def test_cache_requests_are_read_from_real_completions(
    store: SqlStore, settings: Settings
) -> None:
    """A computed result then a served one, through a real worker: two requests, one hit,
    one fingerprint; too few requests for a finding."""
    async with running_worker(store, settings):
        for _ in range(2):
            run_id = launch(store, definition(CACHED), {}, organization="acme")
            assert (await wait_terminal(store, run_id)).status == "completed"
    since = datetime.now(UTC) - timedelta(hours=1)
    [counted] = Facts(store, options(settings)).cache_requests(since)
    assert (counted.organization_slug, counted.definition_name, counted.step_id) == (
        "acme",
        "crunch",
        "crunch",
    )
    assert (counted.requests, counted.hits, counted.fingerprints) == (2, 1, 1)
    assert findings(store, settings, HIT_RATE) == []


def test_low_hit_rate_from_an_input_that_changes_every_run(
    store: SqlStore, settings: Settings
) -> None:
    """25 requests, 23 fingerprints, 2 hits: info (exit 0) naming the churn and the command
    that compares fingerprints; once the input is stable and hits come, nothing."""
    _cached_completions(store, [(n, False) for n in range(23)] + [(0, True), (1, True)])
    report = diagnose(store, options(settings), [HIT_RATE])
    [found] = report.findings
    assert found.severity == "info"
    assert report.exit_code == 0
    assert found.organization == "acme"
    assert found.evidence["requests"] == 25
    assert found.evidence["hits"] == 2
    assert found.evidence["hitRate"] == 0.08
    assert found.evidence["fingerprints"] == 23
    assert found.evidence["missesOfSeenFingerprints"] == 0
    assert found.evidence["ttlSeconds"] == 60
    assert "input changes from run to run" in found.summary
    assert found.fix is not None
    assert "cache.exclude" in found.fix.command
    assert "`podium cache list --org acme --definition crunch --step crunch`" in found.fix.command
    _cached_completions(store, [(0, True)] * 30)  # the input made stable: the entry serves
    assert findings(store, settings, HIT_RATE) == []


def test_low_hit_rate_from_entries_that_expire_before_reuse(
    store: SqlStore, settings: Settings
) -> None:
    """The same 3 inputs again and again, mostly missed: the entries expire (TTL 60 s)."""
    _cached_completions(store, [(n % 3, n % 10 == 0) for n in range(25)])
    [found] = findings(store, settings, HIT_RATE)
    assert found.evidence["requests"] == 25
    assert found.evidence["hits"] == 3
    assert found.evidence["fingerprints"] == 3
    assert found.evidence["missesOfSeenFingerprints"] == 19
    assert "expire before they are reused" in found.summary
    assert found.fix is not None
    assert found.fix.command == (
        "raise cache.ttlSeconds of step crunch of crunch (now 60) and push the definition"
    )
    # another organization's view has none of it
    assert findings(store, settings, HIT_RATE, organization="globex") == []


def _entries(store: SqlStore, organization: str, count: int, expires: datetime) -> None:
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = [
        {
            "organization_slug": organization,
            "fingerprint": uuid.uuid4().hex * 2,
            "definition_name": "crunch",
            "step_id": "crunch",
            "agent": "echo",
            "output": {"text": "same"},
            "stored_at": now - timedelta(hours=1),
            "expires_at": expires,
            "hits": 0,
            "source_run_id": str(uuid.uuid4()),
            "source_step_record_id": str(uuid.uuid4()),
        }
        for n in range(count)
    ]
    store.db.write(lambda conn: conn.execute(cache_entries.insert(), rows))


def _entry_count(store: SqlStore, organization: str) -> int:
    query = sa.select(sa.func.count()).where(cache_entries.c.organization_slug == organization)
    with store.db.read() as conn:
        return int(conn.execute(query).scalar_one())


def test_expired_entry_backlog(
    store: SqlStore, patient: Settings, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """120 entries expired ten minutes ago: info while no worker runs, a warning beside a
    live one (its sweeper is not removing them); `podium cache clear --expired` (the fix)
    deletes them and leaves the live entries."""
    now = datetime.now(UTC)
    _entries(store, "acme", 120, now - timedelta(minutes=10))
    _entries(store, "acme", 5, now + timedelta(hours=1))
    _entries(store, "globex", 10, now - timedelta(minutes=10))  # too few to matter
    _entries(store, "globex", 200, now - timedelta(seconds=5))  # the sweeper is not due yet
    [idle] = findings(store, patient, BACKLOG)
    assert idle.severity == "info"
    assert "no worker is running" in idle.summary
    store.register_worker("w-1", 8)
    report = diagnose(store, options(patient), [BACKLOG])
    [found] = report.findings
    assert report.exit_code == 1
    assert found.severity == "warning"
    assert found.organization == "acme"
    assert found.evidence["expiredEntries"] == 120
    assert found.evidence["liveWorkers"] == 1
    assert found.evidence["oldestOverdueSeconds"] == pytest.approx(600, abs=30)
    assert found.evidence["setting"] == {"PODIUM_SWEEP_SECONDS": patient.sweep_seconds}
    assert "sweep failed" in found.summary
    assert found.fix is not None
    assert found.fix.command == "podium cache clear --expired --org acme"
    assert found.fix.api == "DELETE /api/admin/cache?expired=true"
    monkeypatch.setenv("DATABASE_URL", db_url)
    assert run_cli(["cache", "clear", "--expired", "--org", "acme", "--json"]) == 0
    assert findings(store, patient, BACKLOG) == []
    assert _entry_count(store, "acme") == 5


async def test_a_running_sweeper_clears_the_backlog(store: SqlStore, settings: Settings) -> None:
    """The other half of the fix: a worker's sweeper deletes expired entries by itself."""
    _entries(store, "acme", 150, datetime.now(UTC) - timedelta(minutes=10))
    assert len(findings(store, settings, BACKLOG)) == 1
    async with running_worker(store, settings):
        await wait_for(lambda: _entry_count(store, "acme"), lambda n: n == 0)
    assert findings(store, settings, BACKLOG) == []
