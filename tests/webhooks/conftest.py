"""Fixtures for webhook tests: a store on both databases, a real receiver on loopback, and a
dispatcher running in the background with short timeouts and a controllable clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from podium.events.webhooks.config import WebhookSettings
from podium.events.webhooks.dispatcher import Dispatcher
from podium.events.webhooks.signing import new_secret
from podium.net.urlguard import UrlGuard
from podium.storage.store import SqlStore
from podium.storage.webhooks import EndpointRecord, WebhookStore
from tests.webhooks.receiver import Receiver

LOOPBACK = UrlGuard.allowing_loopback()


class Clock:
    """A clock tests move by hand (starts at the real time, so timestamps look real)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    s = SqlStore.open(db_url)
    yield s
    s.close()


@pytest.fixture
def webhooks(store: SqlStore) -> WebhookStore:
    return WebhookStore(store.db)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    yield r
    r.close()


def fast_webhook_settings(**overrides: Any) -> WebhookSettings:
    values: dict[str, Any] = {
        "retry_schedule": (0.2, 0.4, 0.6),
        "timeout_seconds": 2.0,
        "lease_seconds": 5.0,
        "poll_seconds": 0.1,
    }
    values.update(overrides)
    return WebhookSettings(**values)


@asynccontextmanager
async def dispatching(
    webhooks: WebhookStore, settings: WebhookSettings | None = None, **kwargs: Any
) -> AsyncIterator[Dispatcher]:
    """A dispatcher working in the background for the duration of the block."""
    dispatcher = Dispatcher(
        webhooks, settings or fast_webhook_settings(), guard=kwargs.pop("guard", LOOPBACK), **kwargs
    )
    task = asyncio.create_task(dispatcher.run())
    try:
        yield dispatcher
    finally:
        dispatcher.stop()
        await asyncio.wait_for(task, 30)


EndpointMaker = Callable[..., EndpointRecord]


@pytest.fixture
def endpoint(webhooks: WebhookStore, receiver: Receiver) -> EndpointMaker:
    """``endpoint(organization="acme", **fields)`` registers the receiver."""

    def make(organization: str = "acme", **fields: Any) -> EndpointRecord:
        fields.setdefault("url", receiver.url)
        fields.setdefault("secret", new_secret())
        return webhooks.create_endpoint(organization=organization, **fields)

    return make
