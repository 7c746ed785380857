"""``podium agents`` on the local database (in-process, SQLite)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from podium.cli.main import run_cli


@pytest.fixture(autouse=True)
def _local_db(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("PODIUM_ORG", "acme")
    for name in ("PODIUM_AGENT_URL_ALLOWLIST", "PODIUM_ALLOW_PRIVATE_AGENT_URLS"):
        monkeypatch.delenv(name, raising=False)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any, str]:
    code = run_cli(list(args))
    captured = capsys.readouterr()
    data = json.loads(captured.out) if "--json" in args and code == 0 else captured.out
    return code, data, captured.err


def test_add_show_disable_and_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, added, _ = cli(
        capsys,
        "agents",
        "add",
        "shouter",
        "--target",
        "tests.registry.agents:shout",
        "--concurrency",
        "2",
        "--timeout",
        "30",
        "--json",
    )
    assert code == 0
    assert (added["organizationSlug"], added["kind"], added["concurrencyLimit"]) == (
        "acme",
        "python",
        2,
    )
    code, shown, _ = cli(capsys, "agents", "show", "shouter")
    assert code == 0
    assert "target        tests.registry.agents:shout" in shown
    code, disabled, _ = cli(capsys, "agents", "disable", "shouter", "--json")
    assert code == 0
    assert disabled["active"] is False
    code, listed, _ = cli(capsys, "agents", "list", "--json")
    rows = {(a["slug"], a["active"]) for a in listed["items"]}
    assert ("shouter", False) in rows
    assert ("echo", True) in rows
    code, table, _ = cli(capsys, "agents", "list")
    assert "shouter" in table
    assert "built-in" in table


def test_errors_are_one_line_with_a_non_zero_exit(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "agents", "add", "local", "http://127.0.0.1:9700/x")
    assert code == 2
    assert err.splitlines()[0].startswith("error: 'http://127.0.0.1:9700/x' resolves to 127.0.0.1")
    assert "Traceback" not in err
    code, _, err = cli(capsys, "agents", "show", "ghost")
    assert (code, err.strip()) == (1, "error: agent ghost not found in organization acme or global")
    code, _, err = cli(capsys, "agents", "add", "both", "http://x", "--target", "a:b")
    assert code == 2
    assert "exactly one of AGENT_URL and --target" in err
    code, _, err = cli(capsys, "agents", "refresh", "echo")
    assert code == 1
    assert "built-in" in err
