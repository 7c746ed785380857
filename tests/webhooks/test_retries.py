"""W3: backoff with jitter under a controlled clock, Retry-After, no redirects, 410 disables,
dead letter after the last attempt, replay; and the order of one run's deliveries."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

import pytest

from podium.engine.launcher import launch
from podium.storage.store import SqlStore
from podium.storage.webhooks import DeliveryRecord, WebhookStore
from tests.api.test_stream_support import chain
from tests.support import definition, wait_for
from tests.webhooks.conftest import Clock, EndpointMaker, dispatching, fast_webhook_settings
from tests.webhooks.receiver import Receiver, verify

CREATED = ["orchestration.run.created"]


def one_delivery(store: SqlStore, webhooks: WebhookStore, endpoint_id: str) -> str:
    """Launch a run (no worker) whose run.created event makes one delivery; its run id."""
    run_id = launch(store, definition(chain(1)), {}, organization="acme")
    assert len(webhooks.list_deliveries(None, endpoint_id=endpoint_id)) == 1
    return run_id


def delivery(webhooks: WebhookStore, endpoint_id: str) -> DeliveryRecord:
    (only,) = webhooks.list_deliveries(None, endpoint_id=endpoint_id)
    return only


async def attempted(webhooks: WebhookStore, endpoint_id: str, attempts: int) -> DeliveryRecord:
    return await wait_for(
        lambda: delivery(webhooks, endpoint_id),
        lambda d: d.attempts >= attempts and d.status != "delivering",
    )


async def test_backoff_follows_the_schedule_with_jitter_then_dead_letters(
    store: SqlStore, webhooks: WebhookStore, receiver: Receiver, endpoint: EndpointMaker
) -> None:
    """W3: each retry waits its scheduled delay spread by jitter (±20 %), not a moment
    earlier; after the last attempt the delivery is dead with status, error and body."""
    receiver.mode = "500"
    ep = endpoint(event_types=CREATED)
    one_delivery(store, webhooks, ep.id)
    clock = Clock()
    jitters = iter([0.0, 0.5, 0.999, 0.5])  # the last attempt draws one too
    settings = fast_webhook_settings(retry_schedule=(10.0, 20.0, 40.0), poll_seconds=0.05)
    async with dispatching(webhooks, settings, clock=clock, jitter=lambda: next(jitters)) as d:
        for attempt, (delay, share) in enumerate([(10.0, 0.8), (20.0, 1.0), (40.0, 1.1996)], 1):
            record = await attempted(webhooks, ep.id, attempt)
            assert record.status == "failed"
            wait = (record.next_attempt_at - clock.now).total_seconds()
            assert wait == pytest.approx(delay * share, abs=0.01)
            clock.advance(wait - 0.5)
            assert not webhooks.has_due(clock.now)  # not a moment early
            clock.advance(0.5)
            d.wake()
        record = await attempted(webhooks, ep.id, 4)
    assert record.status == "dead"
    assert record.last_status_code == 500
    assert record.last_error == "HTTP 500"
    assert record.last_response_body == "answer 500"
    assert len(receiver.snapshot()) == 4
    assert len({r.webhook_id for r in receiver.snapshot()}) == 1  # W1: stable id


async def test_retry_after_is_honoured_on_429(
    store: SqlStore, webhooks: WebhookStore, receiver: Receiver, endpoint: EndpointMaker
) -> None:
    """W3: a 429 with Retry-After waits what the receiver asked, not the schedule."""
    receiver.mode, receiver.retry_after = "429", "120"
    ep = endpoint(event_types=CREATED)
    one_delivery(store, webhooks, ep.id)
    clock = Clock()
    async with dispatching(webhooks, fast_webhook_settings(), clock=clock):
        record = await attempted(webhooks, ep.id, 1)
    assert record.status == "failed"
    assert record.next_attempt_at - clock.now == timedelta(seconds=120)


async def test_a_redirect_is_a_failure_that_names_the_location(
    store: SqlStore, webhooks: WebhookStore, receiver: Receiver, endpoint: EndpointMaker
) -> None:
    """W3: a 301 is not followed; the failure names the Location."""
    receiver.mode = "301"
    ep = endpoint(event_types=CREATED)
    one_delivery(store, webhooks, ep.id)
    async with dispatching(webhooks, fast_webhook_settings(retry_schedule=(60.0,))):
        record = await attempted(webhooks, ep.id, 1)
    assert record.status == "failed"
    assert record.last_status_code == 301
    assert "https://elsewhere.example/hook" in (record.last_error or "")
    assert len(receiver.snapshot()) == 1


async def test_410_disables_the_endpoint_with_an_event_and_a_log_line(
    store: SqlStore,
    webhooks: WebhookStore,
    receiver: Receiver,
    endpoint: EndpointMaker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """W3: 410 Gone disables the endpoint at once; nothing more is sent to it."""
    receiver.mode = "410"
    ep = endpoint()
    run_id = launch(store, definition(chain(1)), {}, organization="acme")
    caplog.set_level(logging.WARNING, logger="podium.events.webhooks.dispatcher")
    async with dispatching(webhooks):
        await wait_for(lambda: webhooks.get_endpoint(ep.id), lambda e: not e.enabled)
        await asyncio.sleep(0.3)  # a dispatcher that ignored the 410 would send again here
    assert len(receiver.snapshot()) == 1
    assert "410" in (webhooks.get_endpoint(ep.id).disabled_reason or "")
    disabled = [e for e in store.events_after(run_id) if e.type == "orchestration.webhook.disabled"]
    assert [e.data["endpointId"] for e in disabled] == [ep.id]
    assert any("disabled" in r.getMessage() and ep.id in r.getMessage() for r in caplog.records)


async def test_a_dead_letter_replayed_keeps_its_id_and_is_signed_afresh(
    store: SqlStore, webhooks: WebhookStore, receiver: Receiver, endpoint: EndpointMaker
) -> None:
    """W3 and W1: replay sends the same webhook-id with a new signature, which verifies."""
    receiver.mode = "500"
    ep = endpoint(event_types=CREATED)
    one_delivery(store, webhooks, ep.id)
    async with dispatching(webhooks, fast_webhook_settings(retry_schedule=(0.05,))) as d:
        dead = await wait_for(lambda: delivery(webhooks, ep.id), lambda x: x.status == "dead")
        receiver.mode = "ok"
        sent_at = int(receiver.snapshot()[-1].headers["webhook-timestamp"])
        await wait_for(time.time, lambda t: t >= sent_at + 1)  # a new second: a new timestamp
        replayed = webhooks.replay(dead.id, "acme")
        assert replayed.status == "pending"
        assert replayed.attempts == 0
        d.wake()
        await wait_for(lambda: delivery(webhooks, ep.id), lambda x: x.status == "delivered")
    first, last = receiver.snapshot()[0], receiver.accepted()[-1]
    assert first.webhook_id == last.webhook_id == dead.event_id
    assert int(last.headers["webhook-timestamp"]) > int(first.headers["webhook-timestamp"])
    assert first.headers["webhook-signature"] != last.headers["webhook-signature"]
    verify(ep.secret, last)


async def test_during_rotation_both_secrets_sign(
    store: SqlStore, webhooks: WebhookStore, receiver: Receiver, endpoint: EndpointMaker
) -> None:
    """W1: after a rotation, requests verify with the new secret and with the old one."""
    ep = endpoint(event_types=CREATED)
    rotated = webhooks.rotate_secret(ep.id, "acme", _secret(), overlap_seconds=3600)
    one_delivery(store, webhooks, ep.id)
    async with dispatching(webhooks):
        (request,) = await wait_for(receiver.accepted, lambda r: len(r) == 1)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    verify(rotated.secret, request)
    verify(ep.secret, request)


async def test_after_the_overlap_only_the_new_secret_signs(
    store: SqlStore, webhooks: WebhookStore, receiver: Receiver, endpoint: EndpointMaker
) -> None:
    """W1: the old secret stops signing when the overlap ends."""
    ep = endpoint(event_types=CREATED)
    rotated = webhooks.rotate_secret(ep.id, "acme", _secret(), overlap_seconds=0.001)
    await asyncio.sleep(0.01)
    one_delivery(store, webhooks, ep.id)
    async with dispatching(webhooks):
        (request,) = await wait_for(receiver.accepted, lambda r: len(r) == 1)
    assert len(request.headers["webhook-signature"].split(" ")) == 1
    verify(rotated.secret, request)


async def test_a_later_event_waits_for_the_earlier_one(
    store: SqlStore, webhooks: WebhookStore, receiver: Receiver, endpoint: EndpointMaker
) -> None:
    """Deliveries of one (run, endpoint) go out in sequence order: while the first fails,
    the second is not sent; once it succeeds, the rest follow in order."""
    receiver.mode = "500"
    endpoint()
    run_id = launch(store, definition(chain(1)), {}, organization="acme")
    events = store.events_after(run_id)
    assert len(events) >= 2
    async with dispatching(webhooks, fast_webhook_settings(retry_schedule=(0.05,) * 20)):
        await wait_for(receiver.snapshot, lambda r: len(r) >= 3)
        assert {r.event["sequence"] for r in receiver.snapshot()} == {1}
        receiver.mode = "ok"
        await wait_for(receiver.accepted, lambda r: len(r) == len(events))
    assert [r.event["sequence"] for r in receiver.accepted()] == [e.sequence for e in events]


def _secret() -> str:
    from podium.events.webhooks.signing import new_secret

    return new_secret()
