"""Runbook sections 5 (queue time, heavy uncached steps), 6 (streaming settings, the
webhook URL) and 8 (Podium itself): symptoms injected on both databases, with evidence,
fix, and the fix resolving it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from podium.cli.main import run_cli
from podium.doctor.runner import diagnose
from podium.engine.launcher import launch
from podium.settings import Settings
from podium.storage import migrate
from podium.storage.database import Database
from podium.storage.store import SqlStore
from podium.storage.tables import steps, workers
from tests.doctor.conftest import execute, findings, options
from tests.support import definition, fast_settings

ONE = """
metadata: {name: crunch, version: 1.0.0}
orchestration:
  steps:
    - {id: crunch, agent: echo, input: {text: same}}
"""
CACHED = """
metadata: {name: crunch, version: 1.1.0}
orchestration:
  execution: {caching: {enabled: true}}
  steps:
    - {id: crunch, agent: echo, input: {text: same}}
"""


def _finished_steps(
    store: SqlStore, run_id: str, rows: list[tuple[datetime, float, float]], tag: str
) -> None:
    """Add completed steps to ``run_id``: (queued at, queue seconds, run seconds) each."""
    values = [
        {
            "id": str(uuid.uuid4()),
            "run_id": run_id,
            "step_id": f"{tag}{i}",
            "position": 100 + i,
            "type": "agent",
            "agent": "echo",
            "status": "completed",
            "input": {"i": i},
            "queued_at": queued,
            "started_at": queued + timedelta(seconds=wait),
            "ended_at": queued + timedelta(seconds=wait + took),
            "updated_at": queued,
            "metadata": {},
        }
        for i, (queued, wait, took) in enumerate(rows)
    ]
    store.db.write(lambda conn: conn.execute(steps.insert(), values))


def test_queue_time_rising(store: SqlStore, settings: Settings) -> None:
    """Median queue time of the last 15 minutes against the two hours before."""
    run_id = launch(store, definition(ONE), {}, organization="acme")
    now = datetime.now(UTC)
    before = [(now - timedelta(minutes=60, seconds=i), 0.2, 0.1) for i in range(30)]
    _finished_steps(store, run_id, before, "b")
    assert findings(store, settings, "perf.queue-time-rising") == []  # no recent samples
    recent = [(now - timedelta(minutes=5, seconds=i), 6.0, 0.1) for i in range(30)]
    _finished_steps(store, run_id, recent, "r")
    [found] = findings(store, settings, "perf.queue-time-rising")
    assert found.severity == "warning"
    assert found.evidence["recentMedianSeconds"] == pytest.approx(6.0, abs=0.01)
    assert found.evidence["baselineMedianSeconds"] == pytest.approx(0.2, abs=0.01)
    assert found.evidence["recentSamples"] == 30
    assert found.evidence["baselineSamples"] == 30
    assert found.fix is not None
    assert "podium worker" in found.fix.command


def test_heavy_step_repeated_without_caching(store: SqlStore, settings: Settings) -> None:
    """The same long step with identical input three times, caching off: info (exit 0);
    with caching enabled on the definition the newest runs use, no finding."""
    now = datetime.now(UTC)
    run_ids = []
    for k in range(3):
        run_id = launch(store, definition(ONE), {}, organization="acme")
        queued = now - timedelta(minutes=30 - k)
        execute(
            store,
            sa.update(steps)
            .where(steps.c.run_id == run_id)
            .values(
                status="completed",
                queued_at=queued,
                started_at=queued,
                ended_at=queued + timedelta(seconds=45),
            ),
        )
        run_ids.append(run_id)
    report = diagnose(store, options(settings), ["perf.heavy-uncached"])
    [found] = report.findings
    assert found.severity == "info"
    assert report.exit_code == 0
    assert found.evidence["repeats"] == 3
    assert found.evidence["meanSeconds"] == 45.0
    assert set(found.evidence["runIds"]) == set(run_ids)
    assert found.fix is not None
    assert "cache: {enabled: true} on step crunch" in found.fix.command
    cached = launch(store, definition(CACHED), {}, organization="acme")
    queued = now - timedelta(minutes=1)
    execute(
        store,
        sa.update(steps)
        .where(steps.c.run_id == cached)
        .values(
            status="completed",
            queued_at=queued,
            started_at=queued,
            ended_at=queued + timedelta(seconds=45),
        ),
    )
    assert findings(store, settings, "perf.heavy-uncached") == []


def test_stream_keepalive_longer_than_a_proxy_idle_timeout(
    store: SqlStore, settings: Settings
) -> None:
    """Settings cap the keepalive at 15 s today; a raised cap would be caught here."""
    assert findings(store, settings, "streams.keepalive") == []
    slow = settings.model_copy(update={"keepalive_seconds": 90.0})
    [found] = findings(store, slow, "streams.keepalive")
    assert found.evidence["setting"] == {"PODIUM_KEEPALIVE_SECONDS": 90.0}
    assert found.fix is not None
    assert "PODIUM_KEEPALIVE_SECONDS=15" in found.fix.command


def test_progress_webhook_url_refused_by_the_url_guard(store: SqlStore, settings: Settings) -> None:
    """ORCHESTRATION_PROGRESS_WEBHOOK_URL on loopback is refused unless allowed."""
    environ = {"ORCHESTRATION_PROGRESS_WEBHOOK_URL": "http://127.0.0.1:9/hooks/podium"}
    [found] = findings(store, settings, "streams.webhook-url-refused", environ=environ)
    assert found.severity == "error"
    assert found.evidence["resolvedAddress"] == "127.0.0.1"
    assert found.evidence["reason"] == "loopback"
    assert found.fix is not None
    assert "PODIUM_WEBHOOK_URL_ALLOWLIST" in found.fix.command
    allowed = {**environ, "PODIUM_WEBHOOK_URL_ALLOWLIST": "loopback"}
    assert findings(store, settings, "streams.webhook-url-refused", environ=allowed) == []


def test_migrations_not_at_head(
    db_url: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty database, then one behind head; `podium migrate` (the fix) resolves it."""
    store = SqlStore(Database(db_url))
    try:
        [empty] = findings(store, settings, "podium.migrations")
        assert empty.evidence["current"] is None
        migrate.upgrade(store.db, "0003")
        # the other checks need the current schema: they wait, the doctor still answers
        report = diagnose(store, options(settings), None)
        assert [f.check for f in report.findings] == ["podium.migrations"]
        head = migrate.head_revision(store.db)
        assert head is not None
        assert head > "0003"
        assert report.findings[0].evidence == {"current": "0003", "head": head}
        assert report.exit_code == 2
        fix = report.findings[0].fix
        assert fix is not None
        assert fix.command == "podium migrate"
        monkeypatch.setenv("DATABASE_URL", db_url)
        assert run_cli(["migrate"]) == 0
        assert findings(store, settings, "podium.migrations") == []
    finally:
        store.close()


def test_several_worker_processes_on_one_sqlite_file(store: SqlStore, settings: Settings) -> None:
    """Two live worker processes on SQLite; none on PostgreSQL, where that is the design."""
    store.register_worker("w-1", 8)
    store.register_worker("w-2", 8)
    execute(store, sa.update(workers).where(workers.c.id == "w-2").values(pid=424242))
    found = findings(store, settings, "podium.sqlite-processes")
    if store.db.is_sqlite:
        [one] = found
        assert one.evidence["processes"] == 2
        assert set(one.evidence["workers"]) == {"w-1", "w-2"}
        assert one.fix is not None
        assert "PostgreSQL" in one.fix.command
        store.stop_worker("w-2")
        assert findings(store, settings, "podium.sqlite-processes") == []
    else:
        assert found == []


def test_worker_clock_skewed_against_the_database(store: SqlStore, settings: Settings) -> None:
    """A heartbeat a minute in the future: that worker's clock runs ahead."""
    store.register_worker("w-ahead", 8)
    ahead = datetime.now(UTC) + timedelta(seconds=60)
    execute(store, sa.update(workers).where(workers.c.id == "w-ahead").values(heartbeat_at=ahead))
    [found] = findings(store, settings, "podium.clock-skew")
    assert found.evidence["skewSeconds"]["w-ahead"] == pytest.approx(60, abs=5)
    assert found.fix is not None
    assert "ntp" in found.fix.command.lower()
    # its clock corrected, its next heartbeat is on time
    store.renew_leases(worker_id="w-ahead", step_record_ids=[], lease_seconds=30)
    assert findings(store, settings, "podium.clock-skew") == []


def test_api_keys_absent_on_a_non_loopback_listener(
    store: SqlStore, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PODIUM_HOST=0.0.0.0 with no key: every request would be refused."""
    everywhere = "0.0.0.0"  # noqa: S104 - listening on every interface is the symptom
    exposed = fast_settings(db_url, host=everywhere)
    [found] = findings(store, exposed, "podium.keys-absent")
    assert found.severity == "error"
    assert found.evidence["setting"] == {"PODIUM_HOST": everywhere}
    assert found.fix is not None
    assert found.fix.command == "podium keys create --org ORG --role admin --name NAME"
    monkeypatch.setenv("DATABASE_URL", db_url)
    assert run_cli(["keys", "create", "--org", "acme", "--role", "admin", "--name", "ops"]) == 0
    assert findings(store, exposed, "podium.keys-absent") == []
    local = fast_settings(db_url)
    assert findings(store, local, "podium.keys-absent") == []
