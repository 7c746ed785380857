"""Deliveries reach a real receiver signed (W1), in order, and exactly once when acknowledged."""

from __future__ import annotations

import asyncio

from podium.engine.launcher import launch
from podium.events.webhooks.dispatcher import Dispatcher
from podium.storage.store import SqlStore
from podium.storage.webhooks import WebhookStore
from tests.api.test_stream_support import chain
from tests.support import definition, fast_settings, running_worker, wait_for, wait_terminal
from tests.webhooks.conftest import LOOPBACK, EndpointMaker, dispatching, fast_webhook_settings
from tests.webhooks.receiver import Receiver, verify

CHAIN = chain(2, name="chain", seconds=0)


async def test_every_event_of_a_run_is_delivered_signed_in_order(
    store: SqlStore,
    webhooks: WebhookStore,
    receiver: Receiver,
    endpoint: EndpointMaker,
    db_url: str,
) -> None:
    """W1: every request verifies with standardwebhooks; webhook-id is the event id."""
    ep = endpoint()
    run_id = launch(store, definition(CHAIN), {}, organization="acme")
    async with running_worker(store, fast_settings(db_url)), dispatching(webhooks):
        await wait_terminal(store, run_id)
        stored = store.events_after(run_id)
        await wait_for(receiver.accepted, lambda r: len(r) >= len(stored))
    received = receiver.accepted()
    assert [r.webhook_id for r in received] == [e.id for e in stored]
    for request, event in zip(received, stored, strict=True):
        body = verify(ep.secret, request)
        assert body["sequence"] == event.sequence
        assert body["type"] == event.type
        assert body["links"]["run"] == f"/api/orchestrations/{run_id}"
    statuses = {d.status for d in webhooks.list_deliveries(None, endpoint_id=ep.id)}
    assert statuses == {"delivered"}


async def test_no_endpoint_writes_no_delivery(
    store: SqlStore, webhooks: WebhookStore, db_url: str
) -> None:
    """With no endpoint configured, nothing extra is written."""
    run_id = launch(store, definition(CHAIN), {}, organization="acme")
    async with running_worker(store, fast_settings(db_url)):
        await wait_terminal(store, run_id)
    assert webhooks.status_counts() == {}


async def test_a_cancelled_dispatcher_stops(webhooks: WebhookStore) -> None:
    """Cancelling the dispatcher's task ends it, whatever it was waiting for (a cancel that
    races the poll timeout used to be swallowed, and the loop went on forever)."""
    settings = fast_webhook_settings(poll_seconds=0.001)
    for _ in range(20):
        dispatcher = Dispatcher(webhooks, settings, guard=LOOPBACK)
        task = asyncio.create_task(dispatcher.run())
        await wait_for(lambda d=dispatcher: d.waits, lambda n: n >= 2)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=10)
        if not done:
            dispatcher.stop()
            await task
        assert done, "the cancel was swallowed"
