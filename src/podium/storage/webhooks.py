"""Webhook endpoints, their deliveries as operators see them, and stream tickets.

:class:`WebhookStore` is the storage port of the webhook feature: one method per transaction,
on the same :class:`~podium.storage.database.Database` as :class:`SqlStore`. Endpoints belong
to one organization (``*``: the global endpoint, which receives every organization's events);
``organization=None`` means "any organization" (the local operator, the dispatcher).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from podium.domain.events import EventType
from podium.domain.ids import new_id
from podium.domain.webhooks import GLOBAL_ENDPOINT_ID, GLOBAL_ORG, DeliveryStatus
from podium.errors import Conflict, NotFound
from podium.storage import dispatch, outbox
from podium.storage.database import Database, Listener
from podium.storage.outbox import AttemptResult, ClaimedDelivery
from podium.storage.runtx import lock_run
from podium.storage.tables import stream_tickets, webhook_deliveries, webhook_endpoints

E = webhook_endpoints
D = webhook_deliveries
# as ``ix_webhook_deliveries_dead`` is conditioned (tables.py), so both databases use it
DEAD_LETTERS = D.c.status == sa.literal_column(f"'{DeliveryStatus.DEAD.value}'")
EDITABLE = ("url", "description", "event_types", "definitions", "enabled", "rate_limit")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class EndpointRecord:
    id: str
    organization_slug: str
    url: str
    description: str | None
    event_types: list[str]
    definitions: list[str] | None
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None
    enabled: bool
    disabled_reason: str | None
    rate_limit: int | None
    max_in_flight: int
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class DeliveryRecord:
    id: str
    endpoint_id: str
    organization_slug: str
    run_id: str
    sequence: int
    event_id: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    last_response_body: str | None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None


@dataclass(frozen=True)
class TicketGrant:
    """Who a redeemed stream ticket speaks for."""

    organization_slug: str
    role: str
    actor_name: str
    key_id: str | None
    run_id: str


HAS_DUE = sa.select(D.c.id).where(dispatch.FREE_AND_DUE).limit(1)

_DELIVERY_COLUMNS = [c for c in D.c if c.name not in ("lease_owner", "lease_expires_at")]


def _scoped(query: Any, column: Any, organization: str | None) -> Any:
    return query if organization is None else query.where(column == organization)


def _own_deliveries(query: Any, organization: str | None) -> Any:
    """Deliveries of ``organization``'s endpoints (not the global endpoint's)."""
    if organization is None:
        return query
    mine = sa.select(E.c.id).where(E.c.organization_slug == organization)
    return query.where(D.c.endpoint_id.in_(mine))


def ticket_hash(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


class WebhookStore:
    """Endpoints, deliveries and stream tickets on one database. Safe to share."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _changed(self) -> None:
        outbox.invalidate(self.db.engine)

    def add_listener(self, listener: Listener) -> None:
        self.db.add_listener(listener)

    def remove_listener(self, listener: Listener) -> None:
        self.db.remove_listener(listener)

    def known_subscriptions(self) -> Any:
        """The enabled endpoints' subscriptions as the outbox caches them (cheap)."""
        return outbox.known_subscriptions(self.db.engine)

    # -- endpoints --------------------------------------------------------------------------

    def create_endpoint(
        self,
        *,
        organization: str,
        url: str,
        secret: str,
        description: str | None = None,
        event_types: list[str] | None = None,
        definitions: list[str] | None = None,
        enabled: bool = True,
        rate_limit: int | None = None,
        endpoint_id: str | None = None,
    ) -> EndpointRecord:
        now = utcnow()
        values = {
            "id": endpoint_id or new_id(),
            "organization_slug": organization,
            "url": url,
            "description": description,
            "event_types": event_types or [],
            "definitions": definitions,
            "secret": secret,
            "enabled": enabled,
            "rate_limit": rate_limit,
            "created_at": now,
            "updated_at": now,
        }

        def tx(conn: sa.Connection) -> EndpointRecord:
            if conn.execute(sa.select(E.c.id).where(E.c.id == values["id"])).first():
                raise Conflict(f"webhook endpoint {values['id']} already exists")
            conn.execute(E.insert().values(values))
            record: EndpointRecord = self._get(conn, str(values["id"]), None)
            return record

        try:
            return self.db.write(tx)
        finally:
            self._changed()

    def _get(self, conn: sa.Connection, endpoint_id: str, organization: str | None) -> Any:
        query = _scoped(
            sa.select(E).where(E.c.id == endpoint_id), E.c.organization_slug, organization
        )
        row = conn.execute(query).mappings().first()
        if row is None:
            raise NotFound(f"webhook endpoint {endpoint_id} not found")
        return EndpointRecord(**dict(row))

    def get_endpoint(self, endpoint_id: str, organization: str | None = None) -> EndpointRecord:
        with self.db.read() as conn:
            record: EndpointRecord = self._get(conn, endpoint_id, organization)
            return record

    def list_endpoints(self, organization: str | None = None) -> list[EndpointRecord]:
        query = _scoped(
            sa.select(E).order_by(E.c.created_at, E.c.id), E.c.organization_slug, organization
        )
        with self.db.read() as conn:
            return [EndpointRecord(**dict(r)) for r in conn.execute(query).mappings()]

    def update_endpoint(
        self, endpoint_id: str, organization: str | None, **changes: Any
    ) -> EndpointRecord:
        """Change the :data:`EDITABLE` fields given; enabling clears the disabled reason."""
        values = {k: v for k, v in changes.items() if k in EDITABLE}
        if values.get("enabled") is True:
            values["disabled_reason"] = None
            values["failing_since"] = None
        elif values.get("enabled") is False:
            values["disabled_reason"] = changes.get("disabled_reason") or "disabled by an operator"

        def tx(conn: sa.Connection) -> EndpointRecord:
            self._get(conn, endpoint_id, organization)
            if values:
                conn.execute(
                    E.update().where(E.c.id == endpoint_id).values(**values, updated_at=utcnow())
                )
            record: EndpointRecord = self._get(conn, endpoint_id, None)
            return record

        try:
            return self.db.write(tx)
        finally:
            self._changed()

    def delete_endpoint(self, endpoint_id: str, organization: str | None) -> None:
        """Remove an endpoint and its deliveries."""

        def tx(conn: sa.Connection) -> None:
            self._get(conn, endpoint_id, organization)
            conn.execute(D.delete().where(D.c.endpoint_id == endpoint_id))
            conn.execute(E.delete().where(E.c.id == endpoint_id))

        try:
            self.db.write(tx)
        finally:
            self._changed()

    def rotate_secret(
        self, endpoint_id: str, organization: str | None, secret: str, overlap_seconds: float
    ) -> EndpointRecord:
        """Make ``secret`` the endpoint's secret; the old one still signs for the overlap."""
        now = utcnow()

        def tx(conn: sa.Connection) -> EndpointRecord:
            old: EndpointRecord = self._get(conn, endpoint_id, organization)
            conn.execute(
                E.update()
                .where(E.c.id == endpoint_id)
                .values(
                    secret=secret,
                    previous_secret=old.secret,
                    previous_secret_expires_at=now + timedelta(seconds=overlap_seconds),
                    updated_at=now,
                )
            )
            record: EndpointRecord = self._get(conn, endpoint_id, None)
            return record

        return self.db.write(tx)

    def sync_global(self, url: str | None, secret: str | None) -> EndpointRecord | None:
        """Make the global endpoint match ``ORCHESTRATION_PROGRESS_WEBHOOK_URL`` (``None``:
        disable it if it exists). Keeps its deliveries and its disabled state otherwise."""
        now = utcnow()

        def tx(conn: sa.Connection) -> EndpointRecord | None:
            row = conn.execute(sa.select(E).where(E.c.id == GLOBAL_ENDPOINT_ID)).mappings().first()
            if url is None or secret is None:
                if row is not None and row["enabled"]:
                    conn.execute(
                        E.update()
                        .where(E.c.id == GLOBAL_ENDPOINT_ID)
                        .values(enabled=False, disabled_reason="not configured", updated_at=now)
                    )
                return None
            if row is None:
                conn.execute(
                    E.insert().values(
                        id=GLOBAL_ENDPOINT_ID,
                        organization_slug=GLOBAL_ORG,
                        url=url,
                        description="ORCHESTRATION_PROGRESS_WEBHOOK_URL",
                        event_types=[],
                        secret=secret,
                        enabled=True,
                        created_at=now,
                        updated_at=now,
                    )
                )
            elif row["url"] != url or row["secret"] != secret:
                conn.execute(
                    E.update()
                    .where(E.c.id == GLOBAL_ENDPOINT_ID)
                    .values(
                        url=url, secret=secret, enabled=True, disabled_reason=None, updated_at=now
                    )
                )
            record: EndpointRecord = self._get(conn, GLOBAL_ENDPOINT_ID, None)
            return record

        try:
            return self.db.write(tx)
        finally:
            self._changed()

    def disable_endpoint(self, endpoint_id: str, reason: str, run_id: str | None) -> bool:
        """Disable an enabled endpoint and record ``orchestration.webhook.disabled`` on
        ``run_id`` (the run whose delivery showed it). False if it was already disabled."""
        now = utcnow()
        self._changed()  # this transaction's own events must not go to the endpoint

        def tx(conn: sa.Connection) -> bool:
            done = conn.execute(
                E.update()
                .where(E.c.id == endpoint_id, E.c.enabled.is_(True))
                .values(enabled=False, disabled_reason=reason, updated_at=now)
            ).rowcount
            if done and run_id is not None:
                outbox.invalidate(conn.engine)
                rtx = lock_run(conn, run_id, now, skip_locked=self.db.skip_locked)
                rtx.emit(EventType.WEBHOOK_DISABLED, {"endpointId": endpoint_id, "reason": reason})
                rtx.close()
            return bool(done)

        try:
            return self.db.write(tx)
        finally:
            self._changed()

    # -- the dispatcher ---------------------------------------------------------------------

    def cycle(
        self,
        finished: Sequence[tuple[ClaimedDelivery, AttemptResult]],
        released: Sequence[ClaimedDelivery] = (),
        *,
        owner: str,
        lease_seconds: float,
        limit: int,
        chain_limit: int = 0,
        now: datetime | None = None,
        admit: outbox.Admit | None = None,
    ) -> list[list[ClaimedDelivery]]:
        """One transaction: record the ``finished`` attempts, give back the ``released``
        deliveries, then claim up to ``limit`` chains of at most ``1 + chain_limit``
        deliveries (:mod:`podium.storage.dispatch`; the ones those attempts unblocked
        among them)."""
        at = now or utcnow()

        def tx(conn: sa.Connection) -> list[list[ClaimedDelivery]]:
            if finished:
                dispatch.record(conn, finished, owner, at)
            dispatch.release(conn, released, owner)
            if limit <= 0:
                return []
            return dispatch.claim_chains(
                conn,
                owner=owner,
                now=at,
                lease_until=at + timedelta(seconds=lease_seconds),
                limit=limit,
                chain_limit=chain_limit,
                skip_locked=self.db.skip_locked,
                admit=admit,
            )

        return self.db.write(tx)

    def has_due(self, now: datetime | None = None) -> bool:
        """Whether some delivery may be claimable (a cheap read; no write lock on SQLite)."""
        with self.db.read() as conn:
            row = conn.execute(HAS_DUE, {"now": now or utcnow()}).first()
            return row is not None

    def failing_since(self, endpoint_id: str) -> datetime | None:
        with self.db.read() as conn:
            value: datetime | None = conn.execute(
                sa.select(E.c.failing_since).where(E.c.id == endpoint_id)
            ).scalar()
            return value

    # -- deliveries -------------------------------------------------------------------------

    def list_deliveries(
        self,
        organization: str | None,
        *,
        endpoint_id: str | None = None,
        run_id: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[DeliveryRecord]:
        """Newest first; of ``organization``'s endpoints only (None: every endpoint)."""
        query = sa.select(*_DELIVERY_COLUMNS).order_by(D.c.created_at.desc(), D.c.sequence.desc())
        query = _own_deliveries(query, organization)
        for column, value in (
            (D.c.endpoint_id, endpoint_id),
            (D.c.run_id, run_id),
            (D.c.status, status),
        ):
            if value is not None:
                query = query.where(column == value)
        if since is not None:
            query = query.where(D.c.created_at >= since)
        if until is not None:
            query = query.where(D.c.created_at < until)
        with self.db.read() as conn:
            rows = conn.execute(query.limit(limit)).mappings()
            return [DeliveryRecord(**dict(r)) for r in rows]

    def get_delivery(self, delivery_id: str, organization: str | None) -> DeliveryRecord:
        query = _own_deliveries(
            sa.select(*_DELIVERY_COLUMNS).where(D.c.id == delivery_id), organization
        )
        with self.db.read() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            raise NotFound(f"webhook delivery {delivery_id} not found")
        return DeliveryRecord(**dict(row))

    def replay(self, delivery_id: str, organization: str | None) -> DeliveryRecord:
        """Send one delivery again (Conflict while it is pending or being sent)."""
        self.get_delivery(delivery_id, organization)
        count = self.db.write(lambda conn: outbox.replay(conn, [delivery_id], utcnow()))
        if not count:
            raise Conflict(f"webhook delivery {delivery_id} is already waiting to be sent")
        self._wake()
        return self.get_delivery(delivery_id, organization)

    def replay_dead(
        self,
        organization: str | None,
        *,
        endpoint_id: str,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        """Send an endpoint's dead letters written in ``[since, until)`` again."""

        def tx(conn: sa.Connection) -> int:
            # the partial index holds dead letters: name them as its condition does, a
            # literal, for SQLite's planner to see that the index covers the query
            query = sa.select(D.c.id).where(D.c.endpoint_id == endpoint_id, DEAD_LETTERS)
            query = _own_deliveries(query, organization)
            if since is not None:
                query = query.where(D.c.created_at >= since)
            if until is not None:
                query = query.where(D.c.created_at < until)
            return outbox.replay(conn, conn.execute(query).scalars().all(), utcnow())

        count = self.db.write(tx)
        self._wake()
        return count

    def _wake(self) -> None:
        from podium.storage.dialects import send_wakeup

        self.db.write(lambda conn: send_wakeup(conn, WAKE_WEBHOOKS))

    # -- figures ----------------------------------------------------------------------------

    def dead_letter_count(self) -> int:
        with self.db.read() as conn:
            return outbox.dead_letter_count(conn)

    def status_counts(self) -> dict[str, int]:
        with self.db.read() as conn:
            return outbox.status_counts(conn)

    def oldest_pending_age(self) -> float | None:
        with self.db.read() as conn:
            return outbox.oldest_pending_age(conn, utcnow())

    def endpoint_failures(self) -> dict[str, int]:
        with self.db.read() as conn:
            return outbox.endpoint_failures(conn)

    # -- stream tickets ---------------------------------------------------------------------

    def create_ticket(
        self,
        ticket: str,
        *,
        organization: str,
        role: str,
        actor_name: str,
        key_id: str | None,
        run_id: str,
        ttl_seconds: float,
    ) -> datetime:
        """Store a ticket's hash; returns when it expires."""
        now = utcnow()
        expires = now + timedelta(seconds=ttl_seconds)

        def tx(conn: sa.Connection) -> None:
            conn.execute(stream_tickets.delete().where(stream_tickets.c.expires_at < now))
            conn.execute(
                stream_tickets.insert().values(
                    ticket_hash=ticket_hash(ticket),
                    organization_slug=organization,
                    role=role,
                    actor_name=actor_name,
                    key_id=key_id,
                    run_id=run_id,
                    expires_at=expires,
                    created_at=now,
                )
            )

        self.db.write(tx)
        return expires

    def redeem_ticket(self, ticket: str, now: datetime | None = None) -> TicketGrant | None:
        """Use a ticket once: its grant, or None if unknown, used or expired."""
        at = now or utcnow()
        t = stream_tickets

        def tx(conn: sa.Connection) -> TicketGrant | None:
            row = conn.execute(
                t.update()
                .where(
                    t.c.ticket_hash == ticket_hash(ticket),
                    t.c.used_at.is_(None),
                    t.c.expires_at > at,
                )
                .values(used_at=at)
                .returning(t.c.organization_slug, t.c.role, t.c.actor_name, t.c.key_id, t.c.run_id)
            ).first()
            return None if row is None else TicketGrant(*row)

        return self.db.write(tx)


WAKE_WEBHOOKS = "webhooks"
