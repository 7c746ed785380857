"""``podium serve`` as a real process on a free loopback port, and ``podium keys``."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from podium.cli.main import run_cli
from tests.api.helpers import ECHO, YAML

STARTUP_SECONDS = 30.0
# what these tests are about: an address other machines reach
ALL_INTERFACES = "0.0.0.0"  # noqa: S104
PODIUM = [sys.executable, "-m", "podium.cli.main"]


def environment(db_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODIUM_")}
    env.update(DATABASE_URL=db_url, PODIUM_POLL_SECONDS="0.2", **extra)
    return env


@dataclass
class Server:
    process: subprocess.Popen[str]
    lines: queue.Queue[str]
    url: str = ""

    def wait_for(self, pattern: str, timeout: float = STARTUP_SECONDS) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            seen.append(line)
            if found := re.search(pattern, line):
                return found
        raise AssertionError(f"no line matching {pattern!r}; output: {seen}")


@pytest.fixture
def serve(db_url: str) -> Iterator[Any]:
    """``serve(*args, **env)`` starts ``podium serve``; stopped (SIGTERM) after the test."""
    started: list[Server] = []

    def start(*args: str, **env: str) -> Server:
        process = subprocess.Popen(
            [*PODIUM, "serve", *args],
            env=environment(db_url, **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines: queue.Queue[str] = queue.Queue()

        def pump() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.put(line.rstrip("\n"))

        threading.Thread(target=pump, daemon=True).start()
        server = Server(process, lines)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGTERM)
            try:
                server.process.wait(15)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait(5)


def until(probe: Any, done: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if done(value):
            return value
        assert time.monotonic() < deadline, f"not done within {timeout}s: {value!r}"
        time.sleep(0.05)


def test_serve_runs_the_api_and_a_worker_and_stops_on_sigterm(serve: Any) -> None:
    server = serve("--port", "0")
    url = server.wait_for(r"Podium API on (http://127\.0\.0\.1:\d+)").group(1)
    server.wait_for(r"API docs: " + re.escape(url) + "/docs")
    with httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").status_code == 200
        assert "/api/orchestrations" in client.get("/openapi.json").json()["paths"]
        assert client.post("/api/definitions", content=ECHO, headers=YAML).status_code == 201
        run = client.post("/api/orchestrations", json={"definition": "greet"}).json()
        status = until(
            lambda: client.get(f"/api/orchestrations/{run['id']}/status").json()["status"],
            lambda s: s in ("completed", "failed", "aborted"),
        )
        assert status == "completed"  # the embedded worker ran it
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(20) == 0


def test_serve_refuses_other_interfaces_without_keys(serve: Any) -> None:
    for env in ({}, {"PODIUM_REQUIRE_KEYS": "false"}):
        server = serve("--host", ALL_INTERFACES, "--port", "0", **env)
        assert server.process.wait(STARTUP_SECONDS) == 2
        output = [server.lines.get_nowait() for _ in range(server.lines.qsize())]
        errors = [line for line in output if line.startswith("error:")]
        assert len(errors) == 1, output
        assert ALL_INTERFACES in errors[0]
        assert "Traceback" not in "\n".join(output)


def test_served_keys_are_checked_and_revocation_is_immediate(
    serve: Any, db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """K1 across processes: a key created and revoked with the CLI."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    assert run_cli(["keys", "create", "--org", "acme", "--role", "operator", "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    server = serve("--port", "0", "--no-worker", PODIUM_REQUIRE_KEYS="true")
    url = server.wait_for(r"Podium API on (http://\S+) .*no worker; API keys required").group(1)
    headers = {"Authorization": f"Bearer {created['key']}"}
    with httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/api/orchestrations").status_code == 401
        assert client.get("/api/orchestrations", headers=headers).status_code == 200
        assert run_cli(["keys", "revoke", created["id"]]) == 0
        assert client.get("/api/orchestrations", headers=headers).status_code == 401
    output = capsys.readouterr()
    assert created["key"] not in output.out + output.err


def test_keys_commands(
    db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    # a table as wide as a roomy terminal, whatever the test process's COLUMNS says
    monkeypatch.setenv("COLUMNS", "160")
    from podium.cli import render

    render.out.cache_clear()
    assert run_cli(["keys", "create", "--org", "acme", "--role", "admin", "--name", "ci"]) == 0
    created = capsys.readouterr()
    key = created.out.strip()
    assert re.fullmatch(r"pod_[0-9a-f]+_\S+", key)
    assert "shown only now" in created.err
    assert run_cli(["keys", "create", "--org", "globex", "--role", "viewer"]) == 0
    capsys.readouterr()

    assert run_cli(["keys", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(k["organizationSlug"], k["role"], k["name"]) for k in listed] == [
        ("acme", "admin", "ci"),
        ("globex", "viewer", "viewer@globex"),
    ]
    assert all("key" not in k for k in listed)
    assert run_cli(["keys", "list", "--org", "globex"]) == 0
    table = capsys.readouterr().out
    assert "viewer@globex" in table
    assert "acme" not in table
    assert key.split("_", 2)[2] not in table

    key_id = listed[0]["id"]
    assert run_cli(["keys", "revoke", key_id]) == 0
    assert f"revoked key {key_id}" in capsys.readouterr().out
    assert run_cli(["keys", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["revokedAt"] is not None

    assert run_cli(["keys", "create", "--org", "acme", "--role", "owner"]) == 2
    assert run_cli(["keys", "create", "--org", "Not An Org", "--role", "admin"]) == 2
    assert run_cli(["keys", "revoke", "nope"]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 3
    assert all(line.startswith("error:") for line in errors)
