"""Idempotency records of run launches (``Idempotency-Key``, target I1).

The key is scoped per organization. The first request with a key stores the request's hash
and its response in the same transaction as the run it launched; later requests with the
same key and body get that response again, with another body a 422.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from podium.storage.tables import idempotency_records


@dataclass(frozen=True)
class IdempotencyRecord:
    organization_slug: str
    key: str
    request_hash: str
    run_id: str
    status_code: int
    response: dict[str, Any]
    created_at: datetime


def find(conn: sa.Connection, organization: str, key: str) -> IdempotencyRecord | None:
    row = (
        conn.execute(
            sa.select(idempotency_records).where(
                idempotency_records.c.organization_slug == organization,
                idempotency_records.c.key == key,
            )
        )
        .mappings()
        .first()
    )
    return IdempotencyRecord(**dict(row)) if row is not None else None


def remember(
    conn: sa.Connection,
    *,
    organization: str,
    key: str,
    request_hash: str,
    run_id: str,
    status_code: int,
    response: dict[str, Any],
    now: datetime,
) -> None:
    conn.execute(
        idempotency_records.insert().values(
            organization_slug=organization,
            key=key,
            request_hash=request_hash,
            run_id=run_id,
            status_code=status_code,
            response=response,
            created_at=now,
        )
    )
