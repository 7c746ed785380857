"""``podium webhooks ...`` on the local database, ``webhooks.yaml`` and the global endpoint
loaded at start, and endpoints disabled after failing for too long."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from podium.cli.main import run_cli
from podium.domain.webhooks import GLOBAL_ENDPOINT_ID
from podium.engine.launcher import launch
from podium.errors import InvalidInput
from podium.events.webhooks.config import WebhookSettings
from podium.events.webhooks.signing import new_secret
from podium.events.webhooks.startup import prepare_webhooks
from podium.storage.store import SqlStore
from podium.storage.webhooks import WebhookStore
from tests.api.test_stream_support import chain
from tests.support import definition, wait_for
from tests.webhooks.conftest import (
    LOOPBACK,
    Clock,
    EndpointMaker,
    dispatching,
    fast_webhook_settings,
)
from tests.webhooks.receiver import Receiver


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any, str]:
    code = run_cli(list(args))
    captured = capsys.readouterr()
    data = json.loads(captured.out) if "--json" in args and code == 0 else captured.out
    return code, data, captured.err


def test_cli_add_list_disable_rotate_dead_and_replay(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("PODIUM_ORG", "acme")
    monkeypatch.setenv("PODIUM_WEBHOOK_URL_ALLOWLIST", "loopback")
    code, added, _ = cli(
        capsys,
        "webhooks",
        "add",
        "http://127.0.0.1:9/hook",
        "--event",
        "orchestration.run.*",
        "--json",
    )
    assert code == 0
    assert added["secret"].startswith("whsec_")
    endpoint_id = added["id"]
    code, listed, _ = cli(capsys, "webhooks", "list", "--json")
    assert [e["id"] for e in listed["items"]] == [endpoint_id]
    assert "secret" not in listed["items"][0]
    assert cli(capsys, "webhooks", "disable", endpoint_id)[0] == 0
    code, shown, _ = cli(capsys, "webhooks", "show", endpoint_id, "--json")
    assert shown["enabled"] is False
    code, rotated, _ = cli(capsys, "webhooks", "rotate", endpoint_id, "--json")
    assert rotated["secret"] != added["secret"]
    code, dead, _ = cli(capsys, "webhooks", "dead", "--json")
    assert (code, dead) == (0, {"items": []})
    code, out, _ = cli(
        capsys, "webhooks", "replay", "--endpoint", endpoint_id, "--since", "2000-01-01"
    )
    assert code == 0
    assert "0 dead letter(s)" in out
    code, _, err = cli(capsys, "webhooks", "show", "no-such-endpoint")
    assert code != 0
    assert "not found" in err
    monkeypatch.delenv("PODIUM_WEBHOOK_URL_ALLOWLIST")
    code, _, err = cli(capsys, "webhooks", "add", "http://127.0.0.1:9/hook")
    assert code != 0
    assert "loopback" in err  # N1 at registration, as one line


def test_webhooks_file_and_the_global_endpoint(webhooks: WebhookStore, tmp_path: Path) -> None:
    secret = new_secret()
    path = tmp_path / "webhooks.yaml"
    path.write_text(
        "organizations:\n"
        "  acme:\n"
        "    - id: ops-alerts\n"
        "      url: http://127.0.0.1:9/hook\n"
        "      secretEnv: ACME_SECRET\n"
        "      eventTypes: [orchestration.run.*]\n",
        encoding="utf-8",
    )
    env = {
        "ACME_SECRET": secret,
        "ORCHESTRATION_PROGRESS_WEBHOOK_URL": "http://127.0.0.1:8/all",
        "ORCHESTRATION_PROGRESS_WEBHOOK_SECRET": new_secret(),
    }
    settings = WebhookSettings.from_env(env)
    from podium.events.webhooks import startup

    startup.load_webhooks_file(path, webhooks, LOOPBACK, env)
    prepare_webhooks(webhooks, settings, guard=LOOPBACK)
    prepare_webhooks(webhooks, settings, guard=LOOPBACK)  # again: nothing duplicated
    endpoints = {e.id: e for e in webhooks.list_endpoints()}
    assert set(endpoints) == {"ops-alerts", GLOBAL_ENDPOINT_ID}
    assert endpoints["ops-alerts"].secret == secret
    assert endpoints["ops-alerts"].event_types == ["orchestration.run.*"]
    assert endpoints[GLOBAL_ENDPOINT_ID].organization_slug == "*"
    startup.load_webhooks_file(path, webhooks, LOOPBACK, env)  # reloading updates in place
    assert len(webhooks.list_endpoints("acme")) == 1


def test_a_bad_webhooks_file_names_every_problem(webhooks: WebhookStore, tmp_path: Path) -> None:
    from podium.events.webhooks import startup
    from podium.net.urlguard import UrlGuard

    path = tmp_path / "webhooks.yaml"
    path.write_text(
        "organizations:\n  acme:\n    - {id: a, url: 'http://127.0.0.1:9/'}\n"
        "    - {id: b, url: 'https://hooks.example.com/', secret: nope}\n",
        encoding="utf-8",
    )
    with pytest.raises(InvalidInput) as raised:
        startup.load_webhooks_file(
            path, webhooks, UrlGuard(subject="WEBHOOK", resolver=lambda h, p: ["93.184.216.34"]), {}
        )
    paths = {i.path for i in raised.value.issues}
    assert {
        "organizations.acme[0].url",
        "organizations.acme[0].secret",
        "organizations.acme[1].secret",
    } <= paths
    assert webhooks.list_endpoints() == []


async def test_an_endpoint_failing_longer_than_disable_after_is_disabled(
    store: SqlStore, webhooks: WebhookStore, receiver: Receiver, endpoint: EndpointMaker
) -> None:
    """PODIUM_WEBHOOK_DISABLE_AFTER: continuous failure past it disables, with an event."""
    receiver.mode = "500"
    ep = endpoint(event_types=["orchestration.run.created"])
    run_id = launch(store, definition(chain(1)), {}, organization="acme")
    clock = Clock()
    settings = fast_webhook_settings(retry_schedule=(3600.0,) * 5, disable_after_seconds=3 * 86400)
    async with dispatching(webhooks, settings, clock=clock) as d:
        first = await wait_for(
            lambda: webhooks.list_deliveries(None, endpoint_id=ep.id)[0],
            lambda x: x.attempts == 1 and x.status == "failed",
        )
        assert webhooks.get_endpoint(ep.id).enabled  # failing, not for long yet
        clock.advance(3 * 86400 + 60)
        d.wake()
        await wait_for(lambda: webhooks.get_endpoint(ep.id), lambda e: not e.enabled)
    assert first.status == "failed"
    assert "failing continuously" in (webhooks.get_endpoint(ep.id).disabled_reason or "")
    kinds = [e.type for e in store.events_after(run_id)]
    assert "orchestration.webhook.disabled" in kinds
    assert timedelta(0) < clock.now - first.created_at
