"""API keys: bound to one organization and one role, stored only as hashes.

A key reads ``pod_<id>_<secret>``: the recognizable ``pod_`` prefix, a public id that finds
the row, and 160 random bits. Only the SHA-256 of the whole key is stored; it is compared in
constant time. A revoked key stops working with the next request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from podium.errors import InvalidInput, Issue, NotFound
from podium.storage.tables import api_keys

PREFIX = "pod_"
ROLES = ("viewer", "operator", "admin")


@dataclass(frozen=True)
class ApiKeyRecord:
    id: str
    organization_slug: str
    role: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _record(row: sa.RowMapping) -> ApiKeyRecord:
    return ApiKeyRecord(**{k: v for k, v in row.items() if k != "secret_hash"})


def create(
    conn: sa.Connection, *, organization: str, role: str, name: str, now: datetime
) -> tuple[ApiKeyRecord, str]:
    """Create a key; returns its record and the key itself (shown once, never stored)."""
    if role not in ROLES:
        raise InvalidInput(
            "invalid key", [Issue("role", f"must be one of {', '.join(ROLES)}, not {role!r}")]
        )
    key_id = secrets.token_hex(6)
    key = f"{PREFIX}{key_id}_{secrets.token_urlsafe(20)}"
    conn.execute(
        api_keys.insert().values(
            id=key_id,
            organization_slug=organization,
            role=role,
            name=name,
            secret_hash=_hash(key),
            created_at=now,
        )
    )
    return get(conn, key_id), key


def get(conn: sa.Connection, key_id: str, organization: str | None = None) -> ApiKeyRecord:
    query = sa.select(api_keys).where(api_keys.c.id == key_id)
    if organization is not None:
        query = query.where(api_keys.c.organization_slug == organization)
    row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"API key {key_id} not found")
    return _record(row)


def list_keys(conn: sa.Connection, organization: str | None = None) -> list[ApiKeyRecord]:
    query = sa.select(api_keys).order_by(api_keys.c.created_at)
    if organization is not None:
        query = query.where(api_keys.c.organization_slug == organization)
    return [_record(r) for r in conn.execute(query).mappings()]


def revoke(
    conn: sa.Connection, key_id: str, *, now: datetime, organization: str | None = None
) -> ApiKeyRecord:
    found = get(conn, key_id, organization)
    if found.revoked_at is None:
        conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(revoked_at=now))
    return get(conn, key_id)


def authenticate(conn: sa.Connection, key: str) -> ApiKeyRecord | None:
    """The live key record for ``key``, or None (unknown, malformed, wrong or revoked)."""
    if not key.startswith(PREFIX):
        return None
    key_id, sep, _secret = key[len(PREFIX) :].partition("_")
    if not sep or not key_id:
        return None
    row = conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).mappings().first()
    if row is None or row["revoked_at"] is not None:
        return None
    if not hmac.compare_digest(row["secret_hash"], _hash(key)):
        return None
    return _record(row)


def touch(conn: sa.Connection, key_id: str, now: datetime) -> None:
    conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(last_used_at=now))
