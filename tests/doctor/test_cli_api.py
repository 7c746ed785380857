"""``podium doctor`` (exit codes, output, --json, --only, --fix, --url) and
``GET /api/admin/diagnostics`` (organization scope; ``global`` admins see all)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from podium.api.app import create_app
from podium.cli.main import run_cli
from podium.engine.launcher import launch
from podium.settings import Settings
from podium.storage.store import SqlStore
from podium.storage.tables import events, steps
from tests.acceptance import clitools
from tests.acceptance.clitools import podium
from tests.api.helpers import bearer, serving
from tests.doctor.conftest import execute
from tests.support import definition

CHAIN = """
metadata: {name: chain, version: 1.0.0}
orchestration:
  steps:
    - {id: one, agent: echo, input: {text: a}}
    - {id: two, agent: echo, depends_on: [one], input: {text: b}}
"""
GHOST = """
metadata: {name: haunted, version: 1.0.0}
orchestration:
  steps:
    - {id: call, agent: ghost-of-%s, input: {}}
"""


@pytest.fixture
def cli_env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DATABASE_URL", db_url)
    for name in ("PODIUM_URL", "PODIUM_API_KEY", "ORCHESTRATION_PROGRESS_WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PODIUM_ORG", "default")
    return db_url


def _json(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    out = capsys.readouterr().out
    value: dict[str, object] = json.loads(out)
    return value


def test_a_stopped_worker_found_by_a_real_podium_doctor(store: SqlStore, db_url: str) -> None:
    """The README's session: a run queued while no worker runs; `podium doctor` exits 2
    with the finding grouped under its runbook section, readable at 80 columns."""
    run_id = launch(store, definition(CHAIN), {}, organization="default")
    deadline = time.monotonic() + 60
    while True:
        done = podium("doctor", "--stalled-after", "1s", db_url=db_url, COLUMNS="80")
        if done.returncode == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "1. Run stuck in planning or running" in lines
    assert any("ERROR" in line and "stuck.no-live-worker" in line for line in lines)
    assert "    fix: podium worker" in lines
    assert any(run_id in line for line in lines)
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    assert "Traceback" not in done.stderr


def test_exit_codes_json_and_only(
    store: SqlStore, cli_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """0 healthy, 1 warnings, 2 errors; info leaves 0; --only narrows; unknown check = 2."""
    assert run_cli(["doctor", "--json"]) == 0
    report = _json(capsys)
    assert report["healthy"] is True
    assert report["findings"] == []
    store.push_definition("default", definition(GHOST % "default"))
    assert run_cli(["doctor", "--json"]) == 2
    report = _json(capsys)
    [finding] = report["findings"]  # type: ignore[misc]
    assert finding["check"] == "agents.unknown-slug"
    assert finding["section"] == "4. Agent invocation errors"
    assert finding["fix"]["command"].startswith("podium agents add ghost-of-default")
    assert run_cli(["doctor", "--only", "stuck,perf"]) == 0
    assert "healthy" in capsys.readouterr().out
    assert run_cli(["doctor", "--only", "nonsense"]) == 2
    assert "unknown check" in capsys.readouterr().err
    assert run_cli(["doctor", "--stalled-after", "soon"]) == 2
    assert "--stalled-after" in capsys.readouterr().err


def test_fix_then_fix_again_finds_nothing(
    store: SqlStore, cli_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--fix applies the safe fix (recorded as an event); a second --fix finds nothing."""
    run_id = launch(store, definition(CHAIN), {}, organization="default")
    execute(
        store,
        sa.update(steps)
        .where(steps.c.run_id == run_id, steps.c.step_id == "one")
        .values(status="pending"),
    )
    # the run has been quiet for an hour
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    execute(store, sa.update(events).where(events.c.run_id == run_id).values(timestamp=an_hour_ago))
    args = ["doctor", "--only", "stuck.pending-ready"]
    assert run_cli([*args, "--run", run_id[:8]]) == 2
    assert "stuck.pending-ready" in capsys.readouterr().out
    assert run_cli([*args, "--fix"]) == 0
    captured = capsys.readouterr()
    assert "fixed stuck.pending-ready" in captured.err
    assert "1 changed" in captured.err
    assert store.steps_of(run_id)[0].status == "queued"
    assert run_cli([*args, "--fix"]) == 0
    assert "nothing to fix" in capsys.readouterr().err


async def test_diagnostics_api_is_organization_scoped(
    store: SqlStore, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """GET /api/admin/diagnostics: acme sees acme's findings only, not globex's nor
    Podium's own; a global admin sees all; the CLI over --url prints the same."""
    settings = Settings(database_url=db_url, require_keys=True, rate_limit=100_000)
    for org in ("acme", "globex"):
        store.push_definition(org, definition(GHOST % org))
    _, acme = store.create_key(organization="acme", role="viewer", name="acme-viewer")
    _, root = store.create_key(organization="global", role="admin", name="root")
    app = create_app(settings, store=store, worker=False)
    async with serving(app) as client:
        mine = await client.get("/api/admin/diagnostics", headers=bearer(acme))
        assert mine.status_code == 200, mine.text
        body = mine.json()
        assert [f["organization"] for f in body["findings"]] == ["acme"]
        assert "globex" not in mine.text
        assert body["exitCode"] == 2
        everything = await client.get("/api/admin/diagnostics", headers=bearer(root))
        orgs = {f["organization"] for f in everything.json()["findings"]}
        assert orgs == {"acme", "globex"}
        only = await client.get(
            "/api/admin/diagnostics", params={"only": "stuck"}, headers=bearer(acme)
        )
        assert only.json()["findings"] == []
        bad = await client.get(
            "/api/admin/diagnostics", params={"stalledAfter": "-1"}, headers=bearer(acme)
        )
        assert bad.status_code == 422
        assert bad.headers["content-type"].startswith("application/problem+json")
        nobody = await client.get("/api/admin/diagnostics")
        assert nobody.status_code == 401


def test_doctor_over_url_shows_the_servers_scope(
    store: SqlStore, db_url: str, tmp_path: Path
) -> None:
    """`podium doctor --url`: the server's findings for the caller's organization, the
    same JSON as locally for that organization; --fix is refused over HTTP."""
    for org in ("default", "acme"):
        store.push_definition(org, definition(GHOST % org))
    local = podium("doctor", "--json", db_url=db_url)
    assert local.returncode == 2
    assert {f["organization"] for f in json.loads(local.stdout)["findings"]} == {
        "default",
        "acme",
    }
    with clitools.serving(db_url, tmp_path) as server:
        remote = podium("doctor", "--json", url=server.url)
        assert remote.returncode == 2, remote.stderr
        [finding] = json.loads(remote.stdout)["findings"]
        assert finding["organization"] == "default"
        assert finding["evidence"]["agent"] == "ghost-of-default"
        refused = podium("doctor", "--fix", url=server.url)
        assert refused.returncode == 2
        assert refused.stderr.strip() == "error: --fix works on the local database only (not --url)"
