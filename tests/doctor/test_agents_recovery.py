"""Runbook sections 4 (agents) and 7 (manual recovery): symptoms produced for real or
injected, on both databases; evidence, fix command, and the fix resolving it."""

from __future__ import annotations

import socket

import pytest
import sqlalchemy as sa

from podium.cli.main import run_cli
from podium.engine.launcher import launch
from podium.settings import Settings
from podium.storage.store import SqlStore
from podium.storage.tables import steps
from tests.doctor.conftest import execute, findings
from tests.support import definition, running_worker, wait_terminal

TEN_MINUTES = 600.0
USES = """
metadata: {name: uses-%s, version: 1.0.0}
orchestration:
  steps:
    - {id: call, agent: %s, input: {text: hi}}
"""
FAILING = """
metadata: {name: recoverable, version: 1.0.0}
orchestration:
  error_handling: {on_step_failure: {maxAttempts: 1}}
  steps:
    - {id: first, agent: echo, input: {text: one}}
    - {id: shaky, agent: reject, depends_on: [first], input: {text: two}}
"""
TWO_FAILING = """
metadata: {name: twice, version: 1.0.0}
orchestration:
  error_handling: {on_step_failure: {maxAttempts: 1}}
  steps:
    - {id: left, agent: reject, input: {text: a}}
    - {id: right, agent: reject, input: {text: b}}
"""


def _uses(store: SqlStore, slug: str, org: str = "acme") -> None:
    store.push_definition(org, definition(USES % (slug, slug)))


def _cli(monkeypatch: pytest.MonkeyPatch, db_url: str, *args: str) -> int:
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.delenv("PODIUM_URL", raising=False)
    monkeypatch.setenv("PODIUM_ORG", "acme")
    return run_cli(list(args))


def test_unknown_agent_slug(store: SqlStore, settings: Settings) -> None:
    """A4-style: a step of an active definition names an agent nobody registered."""
    _uses(store, "ghost")
    _uses(store, "echo")  # a built-in agent: fine
    [found] = findings(store, settings, "agents.unknown-slug")
    assert found.severity == "error"
    assert found.organization == "acme"
    assert found.evidence == {
        "definition": "uses-ghost@1.0.0",
        "organization": "acme",
        "step": "call",
        "agent": "ghost",
    }
    assert found.fix is not None
    assert found.fix.command.startswith("podium agents add ghost")
    store.add_agent(
        organization="acme", slug="ghost", kind="python", target="podium.agents.demo:echo"
    )
    assert findings(store, settings, "agents.unknown-slug") == []


def test_disabled_agent_slug(
    store: SqlStore, settings: Settings, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disabled agent named by an active definition; `podium agents enable` fixes it."""
    store.add_agent(
        organization="acme", slug="helper", kind="python", target="podium.agents.demo:echo"
    )
    store.update_agent("acme", "helper", active=False)
    _uses(store, "helper")
    [found] = findings(store, settings, "agents.unknown-slug")
    assert "disabled" in found.summary
    assert found.evidence["agentOrganization"] == "acme"
    assert found.fix is not None
    assert found.fix.command == "podium agents enable helper"
    assert _cli(monkeypatch, db_url, *found.fix.command.split()[1:]) == 0
    assert findings(store, settings, "agents.unknown-slug") == []


def test_routing_rule_denies_a_step(store: SqlStore, settings: Settings) -> None:
    """A routing rule denies the agent of a step of an active definition."""
    _uses(store, "echo")
    rule = {"name": "no-echo", "effect": "deny", "agents": ["echo"]}
    store.put_config("routing-policy", {"rules": [rule]}, actor="test")
    [found] = findings(store, settings, "agents.routing-denied")
    assert found.evidence["rule"] == "no-echo"
    assert found.evidence["step"] == "call"
    assert found.evidence["definition"] == "uses-echo@1.0.0"
    assert found.fix is not None
    assert found.fix.api == "PUT /api/admin/routing-policy"
    store.put_config("routing-policy", {"rules": [{**rule, "agents": ["other"]}]}, actor="test")
    assert findings(store, settings, "agents.routing-denied") == []


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a2a_agent_whose_card_cannot_be_fetched(
    store: SqlStore, settings: Settings, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An active A2A agent whose card cannot be fetched now (nothing listens), and whose
    last call failed; disabling it (the fix) ends both findings."""
    url = f"http://127.0.0.1:{_closed_port()}"
    agent = store.add_agent(organization="acme", slug="remote", kind="a2a", url=url)
    store.record_agent_health(agent.id, error={"code": "agent_unreachable", "message": "refused"})
    environ = {"PODIUM_AGENT_URL_ALLOWLIST": "loopback"}
    [card] = findings(store, settings, "agents.card-unreachable", environ=environ)
    assert card.severity == "warning"
    assert card.evidence["url"] == url
    assert card.evidence["error"]["code"] == "agent_unreachable"
    [failing] = findings(store, settings, "agents.failing")
    assert failing.evidence["lastError"]["code"] == "agent_unreachable"
    assert failing.evidence["lastSuccessAt"] is None
    assert _cli(monkeypatch, db_url, "agents", "disable", "remote") == 0
    assert findings(store, settings, "agents.card-unreachable", environ=environ) == []
    assert findings(store, settings, "agents.failing") == []


async def test_recovery_action_in_flight_for_long(
    store: SqlStore, settings: Settings, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retry whose step never settles (no worker) blocks further actions (409); the
    doctor names it and `podium abort RUN --force` clears it."""
    run_id = launch(store, definition(FAILING), {}, organization="acme")
    async with running_worker(store, settings):
        assert (await wait_terminal(store, run_id)).status == "failed"
    store.retry(run_id, actor="alice")
    assert findings(store, settings, "recovery.in-flight-long") == []  # just started
    [found] = findings(store, settings, "recovery.in-flight-long", later=TEN_MINUTES)
    assert found.evidence["action"] == "retry"
    assert found.evidence["actor"] == "alice"
    assert found.evidence["step"] == "shaky"
    assert found.evidence["inFlightSeconds"] >= 590
    assert found.fix is not None
    assert f"podium abort {run_id} --force" in found.fix.command
    assert _cli(monkeypatch, db_url, "abort", run_id, "--force") == 0
    assert findings(store, settings, "recovery.in-flight-long", later=TEN_MINUTES) == []


async def test_failed_run_whose_last_failed_step_is_not_the_target(
    store: SqlStore, settings: Settings, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two failed steps: a bare retry takes the last to fail; the doctor prints the exact
    --step command for the other, which works."""
    run_id = launch(store, definition(TWO_FAILING), {}, organization="acme")
    async with running_worker(store, settings):
        assert (await wait_terminal(store, run_id)).status == "failed"
    failed = [s for s in store.steps_of(run_id) if s.status == "failed"]
    if len(failed) < 2:  # fail-fast stopped the other one first: fail it as well
        other = next(s for s in store.steps_of(run_id) if s.status != "failed")
        execute(
            store,
            sa.update(steps)
            .where(steps.c.id == other.id)
            .values(status="failed", ended_at=sa.func.current_timestamp()),
        )
    [found] = findings(store, settings, "recovery.ambiguous-target")
    assert found.severity == "info"
    assert found.run_id == run_id
    target = found.evidence["defaultTarget"]["step"]
    [(other_step, _)] = found.evidence["otherFailed"].items()
    assert {target, other_step} == {"left", "right"}
    assert found.fix is not None
    assert found.fix.command == f"podium retry {run_id} --step {other_step}"
    assert _cli(monkeypatch, db_url, *found.fix.command.split()[1:]) == 0
    retried = next(s for s in store.steps_of(run_id) if s.step_id == other_step)
    assert retried.generation == 2
    # one failed step is left at most: a bare retry now takes the only one
    assert findings(store, settings, "recovery.ambiguous-target") == []
