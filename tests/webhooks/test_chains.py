"""Claims in chains (podium.storage.dispatch): the head of a (run, endpoint) queue and the due
deliveries behind it, in sequence order, kept from every other dispatcher until recorded or
released; attempts recorded in one batch as if one by one."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import sqlalchemy as sa

from podium.domain.events import EventType
from podium.domain.webhooks import DeliveryStatus
from podium.engine.launcher import launch
from podium.events.webhooks.dispatcher import LEASE_MARGIN
from podium.storage.outbox import AttemptResult, ClaimedDelivery
from podium.storage.runtx import lock_run
from podium.storage.store import SqlStore, utcnow
from podium.storage.tables import webhook_endpoints
from podium.storage.webhooks import WebhookStore
from tests.api.test_stream_support import chain
from tests.support import definition, wait_for
from tests.webhooks.conftest import EndpointMaker, dispatching, fast_webhook_settings
from tests.webhooks.receiver import Receiver, verify

DELIVERED = AttemptResult(DeliveryStatus.DELIVERED, status_code=204)


def failed(retry_at: datetime) -> AttemptResult:
    return AttemptResult(DeliveryStatus.FAILED, next_attempt_at=retry_at, status_code=500)


def claim(
    webhooks: WebhookStore,
    owner: str,
    now: datetime,
    finished: list[tuple[ClaimedDelivery, AttemptResult]] | None = None,
    released: list[ClaimedDelivery] | None = None,
    chain_limit: int = 32,
) -> list[list[ClaimedDelivery]]:
    return webhooks.cycle(
        finished or [],
        released or [],
        owner=owner,
        lease_seconds=60,
        limit=10,
        chain_limit=chain_limit,
        now=now,
    )


def statuses(webhooks: WebhookStore) -> dict[int, str]:
    return {d.sequence: d.status for d in webhooks.list_deliveries(None)}


def test_a_chain_is_the_head_and_the_due_deliveries_behind_it_in_sequence_order(
    store: SqlStore, webhooks: WebhookStore, endpoint: EndpointMaker
) -> None:
    """The head is leased as delivering; the ones behind it stay pending, reserved: no
    other dispatcher takes any of them, not even once the head is recorded."""
    endpoint()
    run_id = launch(store, definition(chain(2)), {}, organization="acme")
    sequences = [e.sequence for e in store.events_after(run_id)]
    assert len(sequences) >= 3
    now = utcnow()
    (claimed,) = claim(webhooks, "a", now)
    assert [d.event.sequence for d in claimed] == sequences
    assert statuses(webhooks) == {
        s: "delivering" if s == sequences[0] else "pending" for s in sequences
    }
    assert claim(webhooks, "b", now) == []
    assert claim(webhooks, "a", now, finished=[(claimed[0], DELIVERED)]) == []
    assert claim(webhooks, "b", now) == []
    assert statuses(webhooks)[sequences[0]] == "delivered"


def test_released_deliveries_wait_for_their_head_then_go_to_any_dispatcher(
    store: SqlStore, webhooks: WebhookStore, endpoint: EndpointMaker
) -> None:
    """A head that failed gives the rest back; they go out behind it once it is retried."""
    endpoint()
    launch(store, definition(chain(2)), {}, organization="acme")
    now = utcnow()
    (first,) = claim(webhooks, "a", now)
    retry_at = now + timedelta(seconds=30)
    assert (
        claim(webhooks, "a", now, finished=[(first[0], failed(retry_at))], released=first[1:]) == []
    )
    assert set(statuses(webhooks).values()) == {"failed", "pending"}
    assert claim(webhooks, "b", now + timedelta(seconds=29)) == []
    (again,) = claim(webhooks, "b", retry_at)
    assert [d.id for d in again] == [d.id for d in first]
    assert again[0].attempts == 1


def test_a_chain_takes_at_most_chain_limit_behind_its_head(
    store: SqlStore, webhooks: WebhookStore, endpoint: EndpointMaker
) -> None:
    endpoint()
    run_id = launch(store, definition(chain(2)), {}, organization="acme")
    sequences = [e.sequence for e in store.events_after(run_id)]
    (claimed,) = claim(webhooks, "a", utcnow(), chain_limit=1)
    assert [d.event.sequence for d in claimed] == sequences[:2]


def test_max_in_flight_caps_the_chains_of_an_endpoint(
    store: SqlStore, webhooks: WebhookStore, endpoint: EndpointMaker
) -> None:
    """A chain sends one request at a time: an endpoint's cap counts chains."""
    ep = endpoint()
    with store.db.engine.begin() as conn:
        conn.execute(
            sa.update(webhook_endpoints)
            .where(webhook_endpoints.c.id == ep.id)
            .values(max_in_flight=2)
        )
    for _ in range(3):
        launch(store, definition(chain(1)), {}, organization="acme")
    now = utcnow()
    assert len(claim(webhooks, "a", now)) == 2
    assert claim(webhooks, "b", now) == []


def test_a_batch_of_attempts_sets_failing_since_as_if_recorded_one_by_one(
    store: SqlStore, webhooks: WebhookStore, endpoint: EndpointMaker
) -> None:
    """A success clears the endpoint's failing_since; a failure after it starts it anew."""
    ep = endpoint()
    for _ in range(4):
        launch(store, definition(chain(1)), {}, organization="acme")
    now = utcnow()
    heads = [c[0] for c in claim(webhooks, "a", now, chain_limit=0)]
    assert len(heads) == 4
    later = now + timedelta(seconds=5)
    claim(webhooks, "a", now, finished=[(heads[0], failed(later))])
    assert webhooks.get_endpoint(ep.id).failing_since == now
    then = now + timedelta(seconds=1)
    claim(webhooks, "a", then, finished=[(heads[1], DELIVERED), (heads[2], failed(later))])
    assert webhooks.get_endpoint(ep.id).failing_since == then
    claim(webhooks, "a", then, finished=[(heads[3], DELIVERED)])
    assert webhooks.get_endpoint(ep.id).failing_since is None


async def test_a_chain_whose_lease_has_no_room_for_another_request_sends_only_its_head(
    store: SqlStore, webhooks: WebhookStore, receiver: Receiver, endpoint: EndpointMaker
) -> None:
    """A delivery behind the head is sent only while the lease outlasts one more request
    (another dispatcher may take it once the lease ends); given back, it still goes out in
    order, at the head of a later claim."""
    ep = endpoint()
    run_id = launch(store, definition(chain(2)), {}, organization="acme")
    stored = store.events_after(run_id)
    settings = fast_webhook_settings(timeout_seconds=2.0, lease_seconds=2.0 + LEASE_MARGIN)
    async with dispatching(webhooks, settings) as dispatcher:
        await wait_for(receiver.accepted, lambda r: len(r) == len(stored))
    assert [verify(ep.secret, r)["sequence"] for r in receiver.accepted()] == [
        e.sequence for e in stored
    ]
    assert dispatcher.cycles >= len(stored)  # one claim per delivery: the chains were cut
    assert webhooks.status_counts() == {"delivered": len(stored)}


async def test_two_dispatchers_share_the_outbox_without_breaking_order_or_repeating(
    store: SqlStore, webhooks: WebhookStore, receiver: Receiver, endpoint: EndpointMaker
) -> None:
    """Two dispatchers claiming at once while events keep coming (PostgreSQL: SKIP LOCKED;
    SQLite: one writer) send each event once, and each run's in sequence order."""
    ep = endpoint()
    run_ids = [launch(store, definition(chain(1)), {}, organization="acme") for _ in range(6)]

    def progress(i: int) -> None:
        def tx(conn: sa.Connection) -> None:
            rtx = lock_run(conn, run_ids[i % len(run_ids)], utcnow(), skip_locked=store.skip_locked)
            rtx.emit(EventType.RUN_UPDATED, {"i": i})
            rtx.close()

        store.db.write(tx)

    settings = fast_webhook_settings(concurrency=2)  # neither can take every run's chain
    one = dispatching(webhooks, settings, owner="one")
    two = dispatching(webhooks, settings, owner="two")
    async with one as first, two as second:
        for i in range(120):
            await asyncio.to_thread(progress, i)
        stored = {run_id: [e.sequence for e in store.events_after(run_id)] for run_id in run_ids}
        total = sum(len(v) for v in stored.values())
        await wait_for(receiver.accepted, lambda r: len(r) >= total)
    accepted = receiver.accepted()
    assert len({r.webhook_id for r in accepted}) == len(accepted) == total
    per_run: dict[str, list[int]] = {run_id: [] for run_id in run_ids}
    for request in accepted:
        body = verify(ep.secret, request)
        per_run[body["runId"]].append(body["sequence"])
    assert per_run == stored
    assert webhooks.status_counts() == {"delivered": total}
    assert first.outcomes["delivered"] > 0
    assert second.outcomes["delivered"] > 0
    assert first.outcomes["delivered"] + second.outcomes["delivered"] == total
