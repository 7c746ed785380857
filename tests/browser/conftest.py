"""Browser tests: Playwright driving Debian's Chromium (``/usr/bin/chromium``) against a real
``podium serve`` app on a loopback port, on both databases.

Never ``playwright install``: its download host is unreachable here. Without Chromium (or the
playwright package) the tests skip locally with the reason; in CI (``CI=true``) they fail.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn

from podium.api.app import create_app
from podium.storage.store import SqlStore
from tests.conftest import IN_CI
from tests.support import fast_settings

CHROMIUM = os.environ.get("PODIUM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _browser_unavailable() -> str | None:
    try:
        import playwright  # noqa: F401  (only its presence is checked here)
    except ImportError:
        return "the playwright package is not installed"
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture(scope="session")
def chromium_path() -> str:
    reason = _browser_unavailable()
    if reason:
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    return CHROMIUM


@dataclass
class Server:
    url: str
    store: SqlStore


@pytest.fixture
def server_factory(db_url: str) -> Iterator[Any]:
    """``server_factory(**settings)`` starts a real server (embedded worker) on a free
    loopback port and returns its :class:`Server`; every server stops at the end."""
    started: list[tuple[uvicorn.Server, threading.Thread, SqlStore]] = []

    def start(**overrides: Any) -> Server:
        store = SqlStore.open(db_url)
        settings = fast_settings(db_url, rate_limit=100_000, **overrides)
        app = create_app(settings, store=store)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        started.append((server, thread, store))
        deadline = 30.0
        while not server.started and deadline > 0:
            threading.Event().wait(0.02)
            deadline -= 0.02
        if not server.started:
            raise AssertionError("the server did not start")
        return Server(f"http://127.0.0.1:{port}", store)

    yield start
    for server, thread, store in started:
        server.should_exit = True
        thread.join(30)
        store.close()


@pytest.fixture
async def browser(chromium_path: str) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def wait_until(probe: Any, timeout: float = 20.0) -> None:
    """Poll ``probe()`` (a coroutine function) until it is true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await probe():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)
