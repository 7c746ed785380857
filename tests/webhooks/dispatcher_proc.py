"""A webhook dispatcher in its own process, for the W4 drill that ``kill -9``s it.

    python -m tests.webhooks.dispatcher_proc URL LEASE_SECONDS

Loopback receivers allowed; a long request timeout (a hanging receiver keeps the request in
flight until the kill).
"""

from __future__ import annotations

import asyncio
import sys

from podium.events.webhooks.config import WebhookSettings
from podium.events.webhooks.dispatcher import Dispatcher
from podium.net.urlguard import UrlGuard
from podium.storage.store import SqlStore
from podium.storage.webhooks import WebhookStore


async def main(url: str, lease: float) -> None:
    store = SqlStore.open(url)
    settings = WebhookSettings(lease_seconds=lease, timeout_seconds=120.0, poll_seconds=0.1)
    dispatcher = Dispatcher(WebhookStore(store.db), settings, guard=UrlGuard.allowing_loopback())
    print("READY", flush=True)
    await dispatcher.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2])))
