"""The webhook outbox (target W4): one delivery row per event and matching enabled endpoint,
written in the transaction that writes the event; dispatchers claim and settle them through
:mod:`podium.storage.dispatch`.

The delivery rows are written with their events (:func:`insert_with_deliveries`, called by
:mod:`podium.storage.runtx`; one statement on PostgreSQL), so a rolled-back change sends
nothing and a crash after the commit loses nothing. Which endpoints exist is cached per
database for :data:`CACHE_SECONDS` (and dropped at once by this process's own endpoint
changes): with no endpoint, an event costs nothing extra.

Order (spec section 11) is kept by the dispatch side: a later event of a (run, endpoint)
waits for the earlier one to be delivered or dead-lettered.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from podium.domain.ids import new_id
from podium.domain.webhooks import SETTLED, DeliveryStatus, matches_endpoint
from podium.storage import bulk
from podium.storage.records import EventRecord
from podium.storage.tables import runs, webhook_deliveries, webhook_endpoints

CACHE_SECONDS = 1.0
BODY_KEPT = 1024  # bytes of a failed response kept with the delivery

D = webhook_deliveries
E = webhook_endpoints


@dataclass(frozen=True)
class Subscription:
    """What the outbox needs to know of an enabled endpoint."""

    id: str
    organization_slug: str
    event_types: tuple[str, ...]
    definitions: tuple[str, ...] | None


class _Cache:
    """The enabled endpoints of one database, reloaded at most every CACHE_SECONDS."""

    def __init__(self) -> None:
        self.loaded_at = float("-inf")
        self.subscriptions: tuple[Subscription, ...] = ()
        self.lock = threading.Lock()


_caches: weakref.WeakKeyDictionary[Engine, _Cache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def _cache_of(engine: Engine) -> _Cache:
    with _caches_lock:
        cache = _caches.get(engine)
        if cache is None:
            cache = _caches[engine] = _Cache()
        return cache


def invalidate(engine: Engine) -> None:
    """Forget the cached endpoints of ``engine``'s database (this process changed them)."""
    _cache_of(engine).loaded_at = float("-inf")


def known_subscriptions(engine: Engine, max_age: float = 5.0) -> tuple[Subscription, ...] | None:
    """The cached endpoints if loaded within ``max_age`` seconds, else None (unknown)."""
    cache = _cache_of(engine)
    if time.monotonic() - cache.loaded_at > max_age:
        return None
    return cache.subscriptions


def subscriptions(conn: sa.Connection) -> tuple[Subscription, ...]:
    """The enabled endpoints (cached; read through ``conn`` when stale)."""
    cache = _cache_of(conn.engine)
    now = time.monotonic()
    if now - cache.loaded_at < CACHE_SECONDS:
        return cache.subscriptions
    rows = conn.execute(
        sa.select(E.c.id, E.c.organization_slug, E.c.event_types, E.c.definitions).where(
            E.c.enabled.is_(True)
        )
    ).all()
    loaded = tuple(
        Subscription(
            r.id,
            r.organization_slug,
            tuple(r.event_types or ()),
            None if r.definitions is None else tuple(r.definitions),
        )
        for r in rows
    )
    with cache.lock:
        cache.subscriptions, cache.loaded_at = loaded, now
    return loaded


def insert_with_deliveries(
    conn: sa.Connection,
    written: Sequence[dict[str, Any]],
    *,
    bumps: Sequence[bulk.Bump] = (),
    now: datetime | None = None,
) -> None:
    """Insert the event rows ``written`` and their deliveries (W4: in one transaction; on
    PostgreSQL in one statement, so that an endpoint costs no round trip of its own), and
    move the ``bumps``' runs' event counters with them (:func:`bulk.insert_events`)."""
    bulk.insert_events(conn, written, also=deliveries_for(conn, written), bumps=bumps, now=now)


def deliveries_for(conn: sa.Connection, written: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The delivery rows of the events ``written``: one per event and enabled endpoint that
    subscribed to it (none, and no statement, when no endpoint is enabled)."""
    subs = subscriptions(conn)
    if not subs or not written:
        return []
    names: dict[str, str] = {}
    if any(s.definitions is not None for s in subs):
        run_ids = sorted({e["run_id"] for e in written})
        query = sa.select(runs.c.id, runs.c.definition_name).where(runs.c.id.in_(run_ids))
        names = {r.id: r.definition_name for r in conn.execute(query)}
    rows = []
    for e in written:
        for s in subs:
            if matches_endpoint(
                s.organization_slug,
                s.event_types,
                s.definitions,
                organization=e["organization_slug"],
                event_type=e["type"],
                definition=names.get(e["run_id"]),
            ):
                rows.append(_delivery(s.id, e))
    return rows


def _delivery(endpoint_id: str, e: dict[str, Any]) -> dict[str, Any]:
    now = e["timestamp"]
    return {
        "id": new_id(),
        "endpoint_id": endpoint_id,
        "organization_slug": e["organization_slug"],
        "run_id": e["run_id"],
        "sequence": e["sequence"],
        "event_id": e["id"],
        "event_type": e["type"],
        "status": DeliveryStatus.PENDING.value,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }


# -- what dispatch hands around --------------------------------------------------------------


@dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery leased to one dispatcher, with what sending it needs."""

    id: str
    endpoint_id: str
    url: str
    secrets: tuple[str, ...]
    attempts: int  # attempts made before this one
    event: EventRecord


Admit = Callable[[str, int | None], bool]
"""``(endpoint_id, rate_limit) -> bool``: may one more request go to this endpoint now."""


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt came to, as the dispatcher decided (see ``events.webhooks.policy``)."""

    status: DeliveryStatus  # delivered, failed (retry at next_attempt_at) or dead
    next_attempt_at: datetime | None = None
    status_code: int | None = None
    error: str | None = None
    body: str | None = None


def replay(conn: sa.Connection, ids: Iterable[str], now: datetime) -> int:
    """Send these deliveries again from the first attempt (same ``webhook-id``, re-signed).
    Deliveries being sent or waiting to be sent are left alone. Returns how many."""
    ids = list(ids)
    if not ids:
        return 0
    return int(
        conn.execute(
            D.update()
            .where(
                D.c.id.in_(ids),
                D.c.status.in_(
                    [
                        DeliveryStatus.DEAD.value,
                        DeliveryStatus.FAILED.value,
                        DeliveryStatus.DELIVERED.value,
                    ]
                ),
            )
            .values(
                status=DeliveryStatus.PENDING.value,
                attempts=0,
                next_attempt_at=now,
                lease_owner=None,
                lease_expires_at=None,
                updated_at=now,
            )
        ).rowcount
    )


# -- figures for metrics and the doctor -----------------------------------------------------


def dead_letter_count(conn: sa.Connection) -> int:
    """``orchestration_webhook_dead_letters``: deliveries in the dead-letter queue."""
    return int(
        conn.execute(
            sa.select(sa.func.count()).where(D.c.status == DeliveryStatus.DEAD.value)
        ).scalar_one()
    )


def status_counts(conn: sa.Connection) -> dict[str, int]:
    """Deliveries by status (``orchestration_webhook_deliveries_total{outcome}`` counts the
    settled ones: ``delivered`` and ``dead``)."""
    rows = conn.execute(sa.select(D.c.status, sa.func.count()).group_by(D.c.status)).all()
    return {str(r[0]): int(r[1]) for r in rows}


def oldest_pending_age(conn: sa.Connection, now: datetime) -> float | None:
    """Seconds since the oldest unsettled delivery was written (outbox lag), or None."""
    oldest = conn.execute(
        sa.select(sa.func.min(D.c.created_at)).where(D.c.status.not_in([s.value for s in SETTLED]))
    ).scalar()
    if not isinstance(oldest, datetime):
        return None
    return max(0.0, (now - oldest).total_seconds())


def endpoint_failures(conn: sa.Connection) -> dict[str, int]:
    """Per endpoint: deliveries currently failing (``failed``) or dead."""
    rows = conn.execute(
        sa.select(D.c.endpoint_id, sa.func.count())
        .where(D.c.status.in_([DeliveryStatus.FAILED.value, DeliveryStatus.DEAD.value]))
        .group_by(D.c.endpoint_id)
    ).all()
    return {str(r[0]): int(r[1]) for r in rows}
