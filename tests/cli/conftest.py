"""A command's two places: ``where`` runs a test on the local database and against a real
server (uvicorn on a free loopback port, keys required, in a thread of this process) on the
same database, each on SQLite and PostgreSQL. The commands run in-process (``run_cli``)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn

from podium.api.app import create_app
from podium.cli.main import run_cli
from podium.storage.store import SqlStore
from tests.support import fast_settings

START_SECONDS = 30.0
# variables of the developer's shell that would change what a command does
CLEARED = ("PODIUM_URL", "PODIUM_API_KEY", "PODIUM_ORG", "PODIUM_DEBUG", "COLUMNS")


@dataclass
class Where:
    """The local database (``url`` None) or the server at ``url``, as ``acme``'s admin."""

    store: SqlStore
    url: str | None = None
    api_key: str | None = None
    capsys: pytest.CaptureFixture[str] | None = field(default=None, repr=False)

    @property
    def remote(self) -> bool:
        return self.url is not None

    def options(self) -> list[str]:
        if self.url is None:
            return ["--url="]  # an empty URL: the local database
        return ["--url", self.url, "--api-key", self.api_key or ""]

    def run(self, *args: str) -> tuple[int, str, str]:
        """``podium ARGS`` here: (exit code, stdout, stderr)."""
        assert self.capsys is not None
        self.capsys.readouterr()
        code = run_cli([*args, *self.options()])
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *args: str) -> Any:
        code, out, err = self.run(*args, "--json")
        assert code == 0, err
        return json.loads(out)

    def error(self, *args: str) -> tuple[int, str]:
        """The exit code and the one ``error:`` line of a failing command (followed only by
        indented lines naming the fields of bad input, as for an invalid document), with
        those lines joined to it."""
        code, out, err = self.run(*args)
        assert code != 0, out
        first, *issues = err.rstrip("\n").splitlines()
        assert first.startswith("error: "), err
        assert all(line.startswith("  ") and line.strip() for line in issues), err
        assert "Traceback" not in err
        return code, " ".join([first, *(line.strip() for line in issues)])


@contextmanager
def serving(db_url: str) -> Iterator[str]:
    """A server (API only, keys required) on a free loopback port until the block ends;
    its URL."""
    settings = fast_settings(db_url, require_keys=True, rate_limit=100_000)
    app = create_app(settings, worker=False)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_SECONDS
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)  # polling with a deadline, not synchronising
        assert server.started, "the server did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(START_SECONDS)
        sock.close()


@pytest.fixture
def environment(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test's database for every command, organization acme, loopback agents allowed
    (the demo A2A agents listen there), nothing else from the developer's shell."""
    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("PODIUM_ORG", "acme")
    monkeypatch.setenv("PODIUM_AGENT_URL_ALLOWLIST", "loopback")
    monkeypatch.setenv("COLUMNS", "160")  # tables as wide as a roomy terminal


@pytest.fixture
def store(db_url: str, environment: None) -> Iterator[SqlStore]:
    s = SqlStore.open(db_url)
    yield s
    s.close()


@pytest.fixture(params=["local", "server"])
def where(
    request: pytest.FixtureRequest,
    db_url: str,
    store: SqlStore,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Where]:
    """The test on the local database and over HTTP (``--url``, acme's admin key)."""
    if request.param == "local":
        yield Where(store, capsys=capsys)
        return
    with over_http(db_url, store, capsys) as remote:
        yield remote


@pytest.fixture
def remote(db_url: str, store: SqlStore, capsys: pytest.CaptureFixture[str]) -> Iterator[Where]:
    """Only over HTTP: what the server decides (API keys and roles)."""
    with over_http(db_url, store, capsys) as found:
        yield found


@contextmanager
def over_http(db_url: str, store: SqlStore, capsys: pytest.CaptureFixture[str]) -> Iterator[Where]:
    _, key = store.create_key(organization="acme", role="admin", name="admin@acme")
    with serving(db_url) as url:
        yield Where(store, url=url, api_key=key, capsys=capsys)
