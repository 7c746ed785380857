"""W4 and scoping: a delivery row is written in the event's transaction, for each matching
enabled endpoint only; a rolled-back change writes none; the global endpoint gets every
organization's events, an organization's endpoint only its own."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from podium.domain.events import EventType
from podium.domain.webhooks import GLOBAL_ENDPOINT_ID
from podium.engine.launcher import launch
from podium.events.webhooks.signing import new_secret
from podium.storage.runtx import lock_run
from podium.storage.store import SqlStore, utcnow
from podium.storage.tables import events, webhook_deliveries
from podium.storage.webhooks import WebhookStore
from tests.api.test_stream_support import chain
from tests.support import definition
from tests.webhooks.conftest import EndpointMaker


class Boom(Exception):
    pass


def deliveries_of(webhooks: WebhookStore, endpoint_id: str) -> list[str]:
    rows = webhooks.list_deliveries(None, endpoint_id=endpoint_id)
    return [d.event_type for d in sorted(rows, key=lambda d: (d.run_id, d.sequence))]


def test_a_rolled_back_change_writes_no_delivery(
    store: SqlStore, webhooks: WebhookStore, endpoint: EndpointMaker
) -> None:
    """W4: events and their deliveries commit together, or neither does."""
    ep = endpoint()
    run_id = launch(store, definition(chain(1)), {}, organization="acme")
    before = len(deliveries_of(webhooks, ep.id))

    def change_then_fail(conn: sa.Connection) -> None:
        rtx = lock_run(conn, run_id, utcnow(), skip_locked=store.skip_locked)
        rtx.emit(EventType.RECOVERY_ACTION, {"note": "rolled back"})
        rtx.close()
        assert conn.execute(sa.select(sa.func.count()).select_from(webhook_deliveries)).scalar()
        raise Boom

    with pytest.raises(Boom):
        store.db.write(change_then_fail)
    assert len(deliveries_of(webhooks, ep.id)) == before
    with store.db.read() as conn:
        types = conn.execute(sa.select(events.c.type).where(events.c.run_id == run_id)).scalars()
        assert "orchestration.recovery.action" not in list(types)


def test_each_event_of_a_matching_endpoint_gets_one_delivery_in_its_transaction(
    store: SqlStore, webhooks: WebhookStore, endpoint: EndpointMaker
) -> None:
    """W4: the launch's events have their deliveries as soon as the launch committed."""
    ep = endpoint()
    run_id = launch(store, definition(chain(2)), {}, organization="acme")
    stored = store.events_after(run_id)
    rows = webhooks.list_deliveries(None, endpoint_id=ep.id)
    assert sorted((d.sequence, d.event_id) for d in rows) == [(e.sequence, e.id) for e in stored]
    assert {d.status for d in rows} == {"pending"}


def test_event_type_prefixes_and_definition_filters(
    store: SqlStore, webhooks: WebhookStore, endpoint: EndpointMaker
) -> None:
    """An endpoint gets only the event types and definitions it subscribed to."""
    runs_only = endpoint(event_types=["orchestration.run.*"])
    exact = endpoint(event_types=["orchestration.step.queued"])
    other_definition = endpoint(definitions=["something-else"])
    this_definition = endpoint(definitions=["filtered"], event_types=["orchestration.run.created"])
    launch(store, definition(chain(1, name="filtered")), {}, organization="acme")
    assert set(deliveries_of(webhooks, runs_only.id)) <= {
        "orchestration.run.created",
        "orchestration.run.updated",
    }
    assert "orchestration.run.created" in deliveries_of(webhooks, runs_only.id)
    assert deliveries_of(webhooks, exact.id) == ["orchestration.step.queued"]
    assert deliveries_of(webhooks, other_definition.id) == []
    assert deliveries_of(webhooks, this_definition.id) == ["orchestration.run.created"]


def test_a_disabled_endpoint_gets_no_delivery(
    store: SqlStore, webhooks: WebhookStore, endpoint: EndpointMaker
) -> None:
    ep = endpoint(enabled=False)
    launch(store, definition(chain(1)), {}, organization="acme")
    assert deliveries_of(webhooks, ep.id) == []


def test_organization_endpoints_get_their_own_events_and_the_global_one_all(
    store: SqlStore, webhooks: WebhookStore, endpoint: EndpointMaker
) -> None:
    """Scoping: acme's endpoint gets acme's events only; the global endpoint gets both."""
    acme = endpoint("acme", event_types=["orchestration.run.created"])
    globex = endpoint("globex", event_types=["orchestration.run.created"])
    webhooks.sync_global("https://hooks.example.com/all", new_secret())
    acme_run = launch(store, definition(chain(1)), {}, organization="acme")
    globex_run = launch(store, definition(chain(1)), {}, organization="globex")
    assert {d.run_id for d in webhooks.list_deliveries(None, endpoint_id=acme.id)} == {acme_run}
    assert {d.run_id for d in webhooks.list_deliveries(None, endpoint_id=globex.id)} == {globex_run}
    everything = webhooks.list_deliveries(None, endpoint_id=GLOBAL_ENDPOINT_ID)
    assert {d.run_id for d in everything} == {acme_run, globex_run}
    # an organization's listing shows its own endpoints' deliveries, not the global one's
    assert {d.endpoint_id for d in webhooks.list_deliveries("acme")} == {acme.id}
    webhooks.sync_global(None, None)  # the variable was removed: the endpoint stops
    assert not webhooks.get_endpoint(GLOBAL_ENDPOINT_ID).enabled
