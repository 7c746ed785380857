"""Fixtures for HTTP API tests: a store on both databases, an in-process client against
``create_app`` (inside its lifespan), API keys, and runs driven to an end by a worker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest

from podium.settings import Settings
from podium.storage.store import SqlStore
from tests.api.helpers import Finisher, api, bearer
from tests.support import fast_settings, running_worker, wait_terminal


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    s = SqlStore.open(db_url)
    yield s
    s.close()


@pytest.fixture
def settings(db_url: str) -> Settings:
    """Keys required (as on a real network), generous limits."""
    return fast_settings(db_url, require_keys=True, rate_limit=100_000)


@pytest.fixture
async def client(store: SqlStore, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api(store, settings) as c:
        yield c


KeyMaker = Callable[..., str]


@pytest.fixture
def make_key(store: SqlStore) -> KeyMaker:
    """``make_key(org, role="operator", name=None)`` -> a new API key."""

    def make(organization: str, role: str = "operator", name: str | None = None) -> str:
        _, key = store.create_key(
            organization=organization, role=role, name=name or f"{role}@{organization}"
        )
        return key

    return make


@pytest.fixture
def acme(make_key: KeyMaker) -> dict[str, str]:
    """Headers of acme's admin key (name ``admin@acme``)."""
    return bearer(make_key("acme", "admin"))


@pytest.fixture
def globex(make_key: KeyMaker) -> dict[str, str]:
    """Headers of globex's admin key: another organization."""
    return bearer(make_key("globex", "admin"))


@pytest.fixture
def finish(store: SqlStore, db_url: str) -> Finisher:
    """``await finish(run_id)`` runs a worker until the run ends; returns its status."""

    async def run(run_id: str) -> str:
        async with running_worker(store, fast_settings(db_url)):
            return (await wait_terminal(store, run_id)).status

    return run
