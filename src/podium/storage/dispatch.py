"""The dispatch side of the webhook outbox: deliveries claimed in chains, their attempts
recorded in batches, and the ones not sent given back.

A *chain* is the head of one (run, endpoint) queue -- its first unsettled delivery, the only
one that may be sent -- with up to ``chain_limit`` deliveries queued behind it, in
``sequence`` order, that are due as well. The head is leased as ``delivering``; the ones
behind it are *reserved* under the same lease but stay ``pending`` (or ``failed``) until
they are recorded. The dispatcher sends a chain's deliveries one after the other, each only
once the one before it was delivered (spec section 11's order), and releases the rest as
soon as one is not. A reservation keeps every other dispatcher away from a chain once its
head is recorded as delivered; it ends with the lease, so a dispatcher that dies loses
nothing (W4). A chain sends one request at a time, so an endpoint's ``max_in_flight`` caps
its chains.

The statements are built once, at import (as in :mod:`podium.storage.statements`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from podium.domain.webhooks import DeliveryStatus
from podium.storage.outbox import BODY_KEPT, Admit, AttemptResult, ClaimedDelivery
from podium.storage.records import EventRecord
from podium.storage.tables import UTCDateTime, events, webhook_deliveries, webhook_endpoints

D = webhook_deliveries
E = webhook_endpoints

PENDING, DELIVERING, FAILED = (
    DeliveryStatus.PENDING.value,
    DeliveryStatus.DELIVERING.value,
    DeliveryStatus.FAILED.value,
)
UNSETTLED = (PENDING, DELIVERING, FAILED)  # IN, not NOT IN: the due index serves it


def _at(name: str) -> sa.BindParameter[Any]:
    return sa.bindparam(name, type_=UTCDateTime())


def _ids(name: str = "ids") -> sa.BindParameter[Any]:
    return sa.bindparam(name, expanding=True)


# a row no live lease holds: due pending/failed rows, and rows whose dispatcher died
FREE_AND_DUE = sa.and_(
    D.c.status.in_(UNSETTLED),
    D.c.next_attempt_at <= _at("now"),
    sa.or_(D.c.lease_expires_at.is_(None), D.c.lease_expires_at < _at("now")),
)

# the first unsettled delivery of each (endpoint, run): one pass over the unsettled rows
_HEADS = (
    sa.select(D.c.endpoint_id, D.c.run_id, sa.func.min(D.c.sequence).label("sequence"))
    .where(D.c.status.in_(UNSETTLED))
    .group_by(D.c.endpoint_id, D.c.run_id)
    .subquery("heads")
)

CLAIMABLE_HEADS = (
    sa.select(D.c.id, D.c.endpoint_id, D.c.run_id, D.c.sequence, E.c.max_in_flight, E.c.rate_limit)
    .join(
        _HEADS,
        sa.and_(
            _HEADS.c.endpoint_id == D.c.endpoint_id,
            _HEADS.c.run_id == D.c.run_id,
            _HEADS.c.sequence == D.c.sequence,
        ),
    )
    .join(E, E.c.id == D.c.endpoint_id)
    .where(E.c.enabled.is_(True), FREE_AND_DUE)
    .order_by(D.c.next_attempt_at, D.c.sequence)
    .limit(sa.bindparam("n", type_=sa.Integer()))
)
CLAIMABLE_HEADS_SKIP_LOCKED = CLAIMABLE_HEADS.with_for_update(skip_locked=True, of=D)

# chains under a live lease, per endpoint (each sends at most one request at a time)
ACTIVE_CHAINS = (
    sa.select(D.c.endpoint_id, sa.func.count(sa.distinct(D.c.run_id)))
    .where(D.c.status.in_(UNSETTLED), D.c.lease_expires_at >= _at("now"))
    .group_by(D.c.endpoint_id)
)

# the unsettled deliveries queued behind one head, in order (the order index's range)
QUEUED_BEHIND = (
    sa.select(D.c.id, D.c.next_attempt_at, D.c.lease_expires_at)
    .where(
        D.c.endpoint_id == sa.bindparam("endpoint"),
        D.c.run_id == sa.bindparam("run"),
        D.c.sequence > sa.bindparam("sequence", type_=sa.Integer()),
        D.c.status.in_(UNSETTLED),
    )
    .order_by(D.c.sequence)
    .limit(sa.bindparam("n", type_=sa.Integer()))
)
LOCK_QUEUED = (
    sa.select(D.c.id).where(D.c.id.in_(_ids()), FREE_AND_DUE).with_for_update(skip_locked=True)
)

LEASE_HEADS = (
    D.update()
    .where(D.c.id.in_(_ids()))
    .values(
        status=DELIVERING,
        lease_owner=sa.bindparam("owner"),
        lease_expires_at=_at("until"),
        updated_at=_at("now"),
    )
)
RESERVE = (
    D.update()
    .where(D.c.id.in_(_ids()))
    .values(lease_owner=sa.bindparam("owner"), lease_expires_at=_at("until"))
)

LOAD = (
    sa.select(
        D.c.id,
        D.c.endpoint_id,
        D.c.attempts,
        E.c.url,
        E.c.secret,
        E.c.previous_secret,
        E.c.previous_secret_expires_at,
        events.c.id.label("event_id"),
        events.c.run_id,
        events.c.sequence,
        events.c.type,
        events.c.organization_slug,
        events.c.timestamp,
        events.c.step_id,
        events.c.step_record_id,
        events.c.data,
    )
    .join(E, E.c.id == D.c.endpoint_id)
    .join(events, events.c.id == D.c.event_id)
    .where(D.c.id.in_(_ids()))
)

_MINE = sa.and_(
    D.c.id.in_(_ids()), D.c.lease_owner == sa.bindparam("owner"), D.c.status.in_(UNSETTLED)
)
_RECORDED = {
    "status": sa.bindparam("status"),
    "attempts": D.c.attempts + 1,  # the lease kept every other writer away since the claim
    "lease_owner": None,
    "lease_expires_at": None,
    "last_status_code": sa.bindparam("code", type_=sa.Integer()),
    "last_error": sa.bindparam("error", type_=sa.Text()),
    "last_response_body": sa.bindparam("body", type_=sa.Text()),
    "updated_at": _at("now"),
}
RECORD_DELIVERED = (
    D.update().where(_MINE).values(**_RECORDED, delivered_at=_at("now")).returning(D.c.id)
)
RECORD_UNDELIVERED = (
    D.update()
    .where(_MINE)
    .values(**_RECORDED, next_attempt_at=sa.func.coalesce(_at("next"), D.c.next_attempt_at))
    .returning(D.c.id)
)
RELEASE = D.update().where(_MINE).values(lease_owner=None, lease_expires_at=None)

CLEAR_FAILING = (
    E.update().where(E.c.id.in_(_ids()), E.c.failing_since.is_not(None)).values(failing_since=None)
)
START_FAILING = (
    E.update()
    .where(E.c.id.in_(_ids()), E.c.failing_since.is_(None))
    .values(failing_since=_at("now"))
)
RESTART_FAILING = E.update().where(E.c.id.in_(_ids())).values(failing_since=_at("now"))


# -- claiming -------------------------------------------------------------------------------


def claim_chains(
    conn: sa.Connection,
    *,
    owner: str,
    now: datetime,
    lease_until: datetime,
    limit: int,
    chain_limit: int,
    skip_locked: bool,
    admit: Admit | None = None,
) -> list[list[ClaimedDelivery]]:
    """Lease up to ``limit`` chains: due heads of their (run, endpoint) queues, to enabled
    endpoints, within each endpoint's ``max_in_flight`` and (``admit``) rate limit, each
    with up to ``chain_limit`` due deliveries queued behind it."""
    query = CLAIMABLE_HEADS_SKIP_LOCKED if skip_locked else CLAIMABLE_HEADS
    candidates = conn.execute(query, {"now": now, "n": limit * 4}).all()
    if not candidates:
        return []
    active = {str(e): int(n) for e, n in conn.execute(ACTIVE_CHAINS, {"now": now})}
    heads: list[Any] = []
    for c in candidates:
        if len(heads) >= limit:
            break
        if active.get(c.endpoint_id, 0) >= c.max_in_flight:
            continue
        if admit is not None and not admit(c.endpoint_id, c.rate_limit):
            continue
        active[c.endpoint_id] = active.get(c.endpoint_id, 0) + 1
        heads.append(c)
    if not heads:
        return []
    behind = _behind(conn, heads, now, chain_limit, skip_locked, admit)
    lease = {"owner": owner, "until": lease_until, "now": now}
    conn.execute(LEASE_HEADS, {"ids": [h.id for h in heads], **lease})
    reserved = [i for ids in behind.values() for i in ids]
    if reserved:
        conn.execute(RESERVE, {"ids": reserved, **lease})
    loaded = _load(conn, [h.id for h in heads] + reserved, now)
    return [[loaded[h.id], *(loaded[i] for i in behind.get(h.id, ()))] for h in heads]


def _behind(
    conn: sa.Connection,
    heads: Sequence[Any],
    now: datetime,
    chain_limit: int,
    skip_locked: bool,
    admit: Admit | None,
) -> dict[str, list[str]]:
    """Per head: the due deliveries right behind it in its queue that no lease holds."""
    if chain_limit <= 0:
        return {}
    behind: dict[str, list[str]] = {}
    for h in heads:  # one range of the order index each: settled rows are never read
        params = {"endpoint": h.endpoint_id, "run": h.run_id, "sequence": h.sequence}
        ids = behind[h.id] = []
        for row in conn.execute(QUEUED_BEHIND, {**params, "n": chain_limit}):
            if not _free_and_due(row, now):
                break
            ids.append(row.id)
    if skip_locked and any(behind.values()):
        # another transaction holds some of them: a chain stops before the first one
        wanted = [i for ids in behind.values() for i in ids]
        locked = set(conn.execute(LOCK_QUEUED, {"ids": wanted, "now": now}).scalars())
        behind = {h: _prefix(ids, locked.__contains__) for h, ids in behind.items()}
    if admit is not None:
        by_head = {h.id: h for h in heads}
        behind = {
            h: _prefix(ids, lambda _, h=h: admit(by_head[h].endpoint_id, by_head[h].rate_limit))
            for h, ids in behind.items()
        }
    return behind


def _free_and_due(row: Any, now: datetime) -> bool:
    """:data:`FREE_AND_DUE` for one row already read."""
    lease = row.lease_expires_at
    return bool(row.next_attempt_at <= now and (lease is None or lease < now))


def _prefix(ids: list[str], keep: Any) -> list[str]:
    out = []
    for i in ids:
        if not keep(i):
            break
        out.append(i)
    return out


def _load(conn: sa.Connection, ids: Sequence[str], now: datetime) -> dict[str, ClaimedDelivery]:
    claimed = {}
    for r in conn.execute(LOAD, {"ids": list(ids)}).mappings():
        live = [r["secret"]]
        expires = r["previous_secret_expires_at"]
        if r["previous_secret"] and expires is not None and expires > now:
            live.append(r["previous_secret"])
        event = EventRecord(
            id=r["event_id"],
            run_id=r["run_id"],
            sequence=r["sequence"],
            type=r["type"],
            organization_slug=r["organization_slug"],
            timestamp=r["timestamp"],
            step_id=r["step_id"],
            step_record_id=r["step_record_id"],
            data=r["data"],
        )
        claimed[r["id"]] = ClaimedDelivery(
            r["id"], r["endpoint_id"], r["url"], tuple(live), r["attempts"], event
        )
    return claimed


# -- recording attempts ---------------------------------------------------------------------


def record(
    conn: sa.Connection,
    finished: Sequence[tuple[ClaimedDelivery, AttemptResult]],
    owner: str,
    now: datetime,
) -> set[str]:
    """Record attempts of deliveries this ``owner`` still leases (one statement per distinct
    outcome); returns the ids recorded. An endpoint's ``failing_since`` ends up as if the
    attempts had been recorded one by one, in ``finished`` order."""
    groups: dict[tuple[Any, ...], list[str]] = defaultdict(list)
    for delivery, result in finished:
        key = (
            result.status,
            result.status_code,
            result.error,
            (result.body or "")[:BODY_KEPT] or None,
            result.next_attempt_at,
        )
        groups[key].append(delivery.id)
    recorded: set[str] = set()
    for (status, code, error, body, next_at), ids in groups.items():
        params = {"ids": ids, "owner": owner, "now": now, "status": status.value}
        params |= {"code": code, "error": error, "body": body}
        if status is DeliveryStatus.DELIVERED:
            recorded.update(conn.execute(RECORD_DELIVERED, params).scalars())
        else:
            recorded.update(conn.execute(RECORD_UNDELIVERED, {**params, "next": next_at}).scalars())
    _update_failing_since(conn, finished, recorded, now)
    return recorded


def _update_failing_since(
    conn: sa.Connection,
    finished: Sequence[tuple[ClaimedDelivery, AttemptResult]],
    recorded: set[str],
    now: datetime,
) -> None:
    last_ok: dict[str, bool] = {}  # per endpoint: did its last recorded attempt succeed
    ok_before: dict[str, bool] = {}  # ... and did one before that
    for delivery, result in finished:
        if delivery.id not in recorded:
            continue
        endpoint = delivery.endpoint_id
        if endpoint in last_ok:
            ok_before[endpoint] = ok_before.get(endpoint, False) or last_ok[endpoint]
        last_ok[endpoint] = result.status is DeliveryStatus.DELIVERED
    clear = sorted(e for e, ok in last_ok.items() if ok)
    start = sorted(e for e, ok in last_ok.items() if not ok and not ok_before.get(e))
    restart = sorted(e for e, ok in last_ok.items() if not ok and ok_before.get(e))
    for statement, ids in ((CLEAR_FAILING, clear), (START_FAILING, start)):
        if ids:
            conn.execute(statement, {"ids": ids, "now": now})
    if restart:  # a success cleared it, a later failure starts it again
        conn.execute(RESTART_FAILING, {"ids": restart, "now": now})


def release(conn: sa.Connection, deliveries: Sequence[ClaimedDelivery], owner: str) -> None:
    """Give back deliveries of a chain that were not sent, as they were before the claim."""
    if deliveries:
        conn.execute(RELEASE, {"ids": [d.id for d in deliveries], "owner": owner})
