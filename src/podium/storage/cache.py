"""The step cache in the database (spec section 9): entries, single-flight leases, sweeping.

Entries are keyed by (organization, fingerprint): one organization's entries never serve
another's runs. An entry is written only by :func:`store_completed`, inside the transaction
that records the step's completion (see :mod:`podium.storage.settlements`), so a failed,
skipped, aborted or fenced-out step never leaves one. An entry past ``expires_at`` is never
served: :func:`lookup` reports it ``expired`` and deletes it, and :func:`sweep` removes the rest.

Single flight: the first miss of a fingerprint claims it in ``orchestration_cache_flights``.
A claim is live while its row's lease has not expired *and* its owner step is still
``running`` under an unexpired step lease, so a crashed owner's claim dies with its step lease
(renewed by heartbeat) and nobody waits for it forever.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from podium.domain.events import EventType
from podium.storage.database import Database
from podium.storage.records import ClaimedStep
from podium.storage.runtx import RunTx, lock_run
from podium.storage.tables import cache_entries, cache_flights, runs, steps

LookupResult = Literal["hit", "miss", "expired"]


@dataclass(frozen=True)
class CacheEntry:
    """One stored result, as listed and served."""

    organization_slug: str
    fingerprint: str
    definition_name: str
    step_id: str
    agent: str
    output: Any
    stored_at: datetime
    expires_at: datetime | None
    hits: int
    source_run_id: str
    source_step_record_id: str
    last_hit_at: datetime | None = None

    def runtime(self, *, hit: bool) -> dict[str, Any]:
        """``metadata.runtime.cache`` of a step served by (or stored as) this entry."""
        return {
            "fingerprint": self.fingerprint,
            "hit": hit,
            "hits": self.hits,
            "storedAt": self.stored_at.isoformat(),
            "expiresAt": self.expires_at.isoformat() if self.expires_at else None,
            "sourceRunId": self.source_run_id,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "organizationSlug": self.organization_slug,
            "fingerprint": self.fingerprint,
            "definition": self.definition_name,
            "stepId": self.step_id,
            "agent": self.agent,
            "storedAt": self.stored_at.isoformat(),
            "expiresAt": self.expires_at.isoformat() if self.expires_at else None,
            "hits": self.hits,
            "lastHitAt": self.last_hit_at.isoformat() if self.last_hit_at else None,
            "sourceRunId": self.source_run_id,
            "sourceStepRecordId": self.source_step_record_id,
        }


@dataclass(frozen=True)
class CacheWrite:
    """What a settlement does with the cache: store a computed result (``hit`` None), or
    record that the result was served by ``hit``. Carried by a settlement."""

    fingerprint: str
    organization_slug: str
    definition_name: str
    step_id: str
    agent: str
    ttl_seconds: int | None
    hit: CacheEntry | None = None


@dataclass(frozen=True)
class CacheFilter:
    """Which entries an admin call means; every field narrows, None means any."""

    definition: str | None = None
    step_id: str | None = None
    fingerprint: str | None = None
    older_than: datetime | None = None  # stored before this time
    expired_by: datetime | None = None  # past expiresAt at this time (the sweeper's backlog)

    def where(self, organization: str) -> list[sa.ColumnElement[bool]]:
        c = cache_entries.c
        clauses: list[sa.ColumnElement[bool]] = [c.organization_slug == organization]
        if self.definition is not None:
            clauses.append(c.definition_name == self.definition)
        if self.step_id is not None:
            clauses.append(c.step_id == self.step_id)
        if self.fingerprint is not None:
            clauses.append(c.fingerprint == self.fingerprint)
        if self.older_than is not None:
            clauses.append(c.stored_at < self.older_than)
        if self.expired_by is not None:
            clauses.extend((c.expires_at.is_not(None), c.expires_at <= self.expired_by))
        return clauses


def _entry(row: sa.RowMapping) -> CacheEntry:
    return CacheEntry(
        organization_slug=row["organization_slug"],
        fingerprint=row["fingerprint"],
        definition_name=row["definition_name"],
        step_id=row["step_id"],
        agent=row["agent"],
        output=row["output"],
        stored_at=row["stored_at"],
        expires_at=row["expires_at"],
        hits=row["hits"],
        source_run_id=row["source_run_id"],
        source_step_record_id=row["source_step_record_id"],
        last_hit_at=row["last_hit_at"],
    )


def _key(organization: str, fingerprint: str) -> sa.ColumnElement[bool]:
    return sa.and_(
        cache_entries.c.organization_slug == organization,
        cache_entries.c.fingerprint == fingerprint,
    )


def _insert(conn: sa.Connection, table: sa.Table) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql  # loaded by a PostgreSQL connection

        return postgresql.insert(table)
    return sqlite.insert(table)


def lookup(
    conn: sa.Connection, organization: str, fingerprint: str, now: datetime
) -> tuple[LookupResult, CacheEntry | None]:
    """Serve the entry (counting the hit) if it exists and has not expired. An expired entry
    is deleted and reported ``expired``."""
    row = conn.execute(sa.select(cache_entries).where(_key(organization, fingerprint))).first()
    if row is None:
        return "miss", None
    found = _entry(row._mapping)
    if found.expires_at is not None and found.expires_at <= now:
        conn.execute(cache_entries.delete().where(_key(organization, fingerprint)))
        return "expired", None
    conn.execute(
        cache_entries.update()
        .where(_key(organization, fingerprint))
        .values(hits=cache_entries.c.hits + 1, last_hit_at=now)
    )
    return "hit", CacheEntry(**{**found.__dict__, "hits": found.hits + 1, "last_hit_at": now})


def refresh_requested(conn: sa.Connection, run_id: str) -> bool:
    """Whether the run was launched with ``refresh`` (``metadata.refreshCache``)."""
    meta = conn.execute(sa.select(runs.c.metadata).where(runs.c.id == run_id)).scalar()
    return bool((meta or {}).get("refreshCache"))


def claim_flight(
    conn: sa.Connection,
    organization: str,
    fingerprint: str,
    owner: str,
    *,
    lease_seconds: float,
    now: datetime,
) -> bool:
    """Claim the computation of ``fingerprint`` for step record ``owner``; False while
    another live owner holds it (see the module docstring)."""
    f = cache_flights.c
    key = sa.and_(f.organization_slug == organization, f.fingerprint == fingerprint)
    expires = now + timedelta(seconds=lease_seconds)
    conn.execute(
        _insert(conn, cache_flights)
        .values(
            organization_slug=organization,
            fingerprint=fingerprint,
            owner_step_record_id=owner,
            lease_expires_at=expires,
        )
        .on_conflict_do_nothing()
    )
    row = conn.execute(sa.select(f.owner_step_record_id, f.lease_expires_at).where(key)).first()
    if row is None:  # released between the two statements: take it
        return claim_flight(
            conn, organization, fingerprint, owner, lease_seconds=lease_seconds, now=now
        )
    if row.owner_step_record_id == owner:
        return True
    if row.lease_expires_at > now and _owner_alive(conn, row.owner_step_record_id, now):
        return False
    taken = conn.execute(
        cache_flights.update()
        .where(key, f.owner_step_record_id == row.owner_step_record_id)
        .values(owner_step_record_id=owner, lease_expires_at=expires)
    )
    return taken.rowcount == 1


def _owner_alive(conn: sa.Connection, step_record_id: str, now: datetime) -> bool:
    alive = conn.execute(
        sa.select(sa.literal(1)).where(
            steps.c.id == step_record_id,
            steps.c.status == "running",
            steps.c.lease_expires_at > now,
        )
    ).first()
    return alive is not None


def release_flight(conn: sa.Connection, organization: str, fingerprint: str, owner: str) -> None:
    """Give up the claim of ``owner`` (its attempt failed): a waiter may compute instead."""
    f = cache_flights.c
    conn.execute(
        cache_flights.delete().where(
            f.organization_slug == organization,
            f.fingerprint == fingerprint,
            f.owner_step_record_id == owner,
        )
    )


def flight_live(conn: sa.Connection, organization: str, fingerprint: str, now: datetime) -> bool:
    """Whether someone is computing ``fingerprint`` right now."""
    f = cache_flights.c
    row = conn.execute(
        sa.select(f.owner_step_record_id, f.lease_expires_at).where(
            f.organization_slug == organization, f.fingerprint == fingerprint
        )
    ).first()
    return bool(row and row.lease_expires_at > now and _owner_alive(conn, row[0], now))


def settle_completed(
    rtx: RunTx, step: ClaimedStep, write: CacheWrite, output: Any
) -> dict[str, Any]:
    """In the transaction recording ``step``'s completion: store the computed result (or
    count the served one) and record ``metadata.runtime.cache``. Returns what the
    completion event adds (``cached: true`` for a hit)."""
    if write.hit is not None:
        runtime = write.hit.runtime(hit=True)
        extra: dict[str, Any] = {"cached": True, "cache": runtime}
    else:
        entry = store_completed(rtx.conn, step, write, output, rtx.now)
        runtime = entry.runtime(hit=False)
        extra = {"cached": False, "cache": runtime}
    metadata = dict(step.metadata)
    metadata["runtime"] = {**(metadata.get("runtime") or {}), "cache": runtime}
    rtx.conn.execute(
        steps.update().where(steps.c.id == step.step_record_id).values(metadata=metadata)
    )
    return extra


def store_completed(
    conn: sa.Connection, step: ClaimedStep, write: CacheWrite, output: Any, now: datetime
) -> CacheEntry:
    """Store (or replace: a refresh resets ``storedAt``, ``expiresAt`` and ``hits``) the entry
    for a computed result, and end the single flight."""
    expires = now + timedelta(seconds=write.ttl_seconds) if write.ttl_seconds else None
    values = {
        "definition_name": write.definition_name,
        "step_id": write.step_id,
        "agent": write.agent,
        "output": output,
        "stored_at": now,
        "expires_at": expires,
        "hits": 0,
        "last_hit_at": None,
        "source_run_id": step.run_id,
        "source_step_record_id": step.step_record_id,
    }
    conn.execute(
        _insert(conn, cache_entries)
        .values(organization_slug=write.organization_slug, fingerprint=write.fingerprint, **values)
        .on_conflict_do_update(index_elements=["organization_slug", "fingerprint"], set_=values)
    )
    release_flight(conn, write.organization_slug, write.fingerprint, step.step_record_id)
    return CacheEntry(
        organization_slug=write.organization_slug,
        fingerprint=write.fingerprint,
        definition_name=write.definition_name,
        step_id=write.step_id,
        agent=write.agent,
        output=output,
        stored_at=now,
        expires_at=expires,
        hits=0,
        source_run_id=step.run_id,
        source_step_record_id=step.step_record_id,
    )


def sweep(conn: sa.Connection, now: datetime) -> int:
    """Delete expired entries and dead flight claims; returns how many entries went."""
    gone = conn.execute(
        cache_entries.delete().where(
            cache_entries.c.expires_at.is_not(None), cache_entries.c.expires_at <= now
        )
    ).rowcount
    conn.execute(cache_flights.delete().where(cache_flights.c.lease_expires_at <= now))
    return int(gone)


def warn(conn: sa.Connection, step: ClaimedStep, message: str, *, now: datetime) -> None:
    """Emit a warning event for the step (it runs uncached), if its claim is still current."""
    held = conn.execute(
        sa.select(sa.literal(1)).where(
            steps.c.id == step.step_record_id,
            steps.c.status == "running",
            steps.c.claim_token == step.claim_token,
        )
    ).first()
    if held is None:
        return
    rtx = lock_run(conn, step.run_id, now, skip_locked=conn.dialect.name == "postgresql")
    rtx.emit(
        EventType.STEP_PROGRESS,
        {"level": "warning", "code": "cache_unfingerprintable", "message": message},
        step_id=step.step_id,
        step_record_id=step.step_record_id,
    )
    rtx.close()


class CacheStore:
    """The step cache's transactions, on one :class:`Database` (``SqlStore.cache``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def lookup(
        self, organization: str, fingerprint: str, now: datetime
    ) -> tuple[LookupResult, CacheEntry | None]:
        return self.db.write(lambda conn: lookup(conn, organization, fingerprint, now))

    def refresh_requested(self, run_id: str) -> bool:
        with self.db.read() as conn:
            return refresh_requested(conn, run_id)

    def claim_flight(
        self,
        organization: str,
        fingerprint: str,
        owner: str,
        *,
        lease_seconds: float,
        now: datetime,
    ) -> bool:
        return self.db.write(
            lambda conn: claim_flight(
                conn, organization, fingerprint, owner, lease_seconds=lease_seconds, now=now
            )
        )

    def flight_live(self, organization: str, fingerprint: str, now: datetime) -> bool:
        with self.db.read() as conn:
            return flight_live(conn, organization, fingerprint, now)

    def warn(self, step: ClaimedStep, message: str, now: datetime) -> None:
        self.db.write(lambda conn: warn(conn, step, message, now=now))

    def sweep(self, now: datetime) -> int:
        return self.db.write(lambda conn: sweep(conn, now))

    def list_entries(
        self, organization: str, where: CacheFilter, *, limit: int = 100
    ) -> list[CacheEntry]:
        """Entries of ``organization`` matching ``where``, most recently stored first."""
        query = (
            sa.select(cache_entries)
            .where(*where.where(organization))
            .order_by(cache_entries.c.stored_at.desc(), cache_entries.c.fingerprint)
            .limit(limit)
        )
        with self.db.read() as conn:
            return [_entry(r) for r in conn.execute(query).mappings()]

    def delete_entries(self, organization: str, where: CacheFilter) -> int:
        """Delete the matching entries of ``organization``; returns how many."""
        query = cache_entries.delete().where(*where.where(organization))
        return int(self.db.write(lambda conn: conn.execute(query).rowcount))

    def stats(self, organization: str, now: datetime) -> dict[str, Any]:
        """Counts for ``podium cache stats``: entries, live/expired, hits, by step."""
        c = cache_entries.c
        expired = sa.and_(c.expires_at.is_not(None), c.expires_at <= now)
        query = (
            sa.select(
                c.definition_name,
                c.step_id,
                sa.func.count(),
                sa.func.coalesce(sa.func.sum(c.hits), 0),
                sa.func.sum(sa.case((expired, 1), else_=0)),
            )
            .where(c.organization_slug == organization)
            .group_by(c.definition_name, c.step_id)
            .order_by(c.definition_name, c.step_id)
        )
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        by_step = [
            {
                "definition": r[0],
                "stepId": r[1],
                "entries": int(r[2]),
                "hits": int(r[3]),
                "expired": int(r[4] or 0),
            }
            for r in rows
        ]
        return {
            "entries": sum(s["entries"] for s in by_step),
            "hits": sum(s["hits"] for s in by_step),
            "expired": sum(s["expired"] for s in by_step),
            "steps": by_step,
        }
