"""The agent registry: agents per organization (``global`` is visible to all), their cached
Agent Card and health. Also the named configuration documents (the routing policy)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from podium.domain.ids import new_id
from podium.errors import Conflict, NotFound
from podium.storage.dialects import insert_or_ignore
from podium.storage.tables import agents, config_documents

GLOBAL = "global"
EDITABLE = ("url", "target", "active", "concurrency_limit", "timeout_seconds")


@dataclass(frozen=True)
class AgentRecord:
    id: str
    organization_slug: str
    slug: str
    kind: str
    url: str | None
    target: str | None
    active: bool
    concurrency_limit: int | None
    timeout_seconds: float | None
    card: dict[str, Any] | None
    card_fetched_at: datetime | None
    last_success_at: datetime | None
    last_error: dict[str, Any] | None
    last_error_at: datetime | None
    created_at: datetime
    updated_at: datetime


def _record(row: sa.RowMapping) -> AgentRecord:
    return AgentRecord(**dict(row))


def add(
    conn: sa.Connection,
    *,
    organization: str,
    slug: str,
    kind: str,
    url: str | None = None,
    target: str | None = None,
    active: bool = True,
    concurrency_limit: int | None = None,
    timeout_seconds: float | None = None,
    card: dict[str, Any] | None = None,
    now: datetime,
) -> AgentRecord:
    """Register an agent; :class:`Conflict` if the slug is taken in the organization."""
    if find(conn, organization, slug, include_global=False) is not None:
        raise Conflict(f"agent {slug} already exists in organization {organization}")
    conn.execute(
        agents.insert().values(
            id=new_id(),
            organization_slug=organization,
            slug=slug,
            kind=kind,
            url=url,
            target=target,
            active=active,
            concurrency_limit=concurrency_limit,
            timeout_seconds=timeout_seconds,
            card=card,
            card_fetched_at=now if card is not None else None,
            created_at=now,
            updated_at=now,
        )
    )
    found = find(conn, organization, slug, include_global=False)
    assert found is not None
    return found


def upsert(
    conn: sa.Connection,
    *,
    organization: str,
    slug: str,
    kind: str,
    now: datetime,
    **wanted: Any,
) -> tuple[AgentRecord, str]:
    """Make the organization's own agent ``slug`` what ``kind`` and ``wanted`` (editable
    fields) say, in the caller's one transaction: ``created``, ``updated`` or ``unchanged``.

    Safe when two processes load the same ``agents.yaml`` at once: the insert ignores a
    duplicate key (the later transaction waits for the earlier one, then finds its row and
    compares), so neither fails. An agent of another kind is replaced."""
    unknown = set(wanted) - set(EDITABLE)
    if unknown:
        raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
    existing = find(conn, organization, slug, include_global=False)
    if existing is not None and existing.kind != kind:
        remove(conn, organization, slug)
        existing = None
    if existing is None:
        row = {
            "id": new_id(),
            "organization_slug": organization,
            "slug": slug,
            "kind": kind,
            "active": True,
            "created_at": now,
            "updated_at": now,
            **wanted,
        }
        inserted = insert_or_ignore(conn, agents, row, ("organization_slug", "slug"))
        existing = find(conn, organization, slug, include_global=False)
        assert existing is not None
        if inserted:
            return existing, "created"
        if existing.kind != kind:  # a concurrent loader disagreed: the later one wins
            conn.execute(agents.update().where(agents.c.id == existing.id).values(kind=kind))
    changed = {k: v for k, v in wanted.items() if getattr(existing, k) != v}
    if not changed:
        return existing, "unchanged"
    conn.execute(
        agents.update().where(agents.c.id == existing.id).values(**changed, updated_at=now)
    )
    return get(conn, organization, slug), "updated"


def find(
    conn: sa.Connection, organization: str, slug: str, *, include_global: bool = True
) -> AgentRecord | None:
    """The organization's agent ``slug``, else (with ``include_global``) ``global``'s."""
    orgs = [organization, GLOBAL] if include_global and organization != GLOBAL else [organization]
    rows = conn.execute(
        sa.select(agents).where(agents.c.slug == slug, agents.c.organization_slug.in_(orgs))
    ).mappings()
    by_org = {r["organization_slug"]: _record(r) for r in rows}
    return by_org.get(organization) or by_org.get(GLOBAL)


def get(conn: sa.Connection, organization: str, slug: str) -> AgentRecord:
    found = find(conn, organization, slug)
    if found is None:
        raise NotFound(f"agent {slug} not found")
    return found


def list_agents(
    conn: sa.Connection, organization: str | None, *, include_global: bool = True
) -> list[AgentRecord]:
    """Agents of ``organization`` (and ``global``), or of every organization with None."""
    query = sa.select(agents).order_by(agents.c.organization_slug, agents.c.slug)
    if organization is not None:
        orgs = [organization, GLOBAL] if include_global else [organization]
        query = query.where(agents.c.organization_slug.in_(orgs))
    return [_record(r) for r in conn.execute(query).mappings()]


def update(
    conn: sa.Connection, organization: str, slug: str, *, now: datetime, **changes: Any
) -> AgentRecord:
    """Change editable fields of the organization's own agent (not ``global``'s)."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
    found = find(conn, organization, slug, include_global=False)
    if found is None:
        raise NotFound(f"agent {slug} not found")
    conn.execute(agents.update().where(agents.c.id == found.id).values(**changes, updated_at=now))
    return get(conn, organization, slug)


def remove(conn: sa.Connection, organization: str, slug: str) -> None:
    found = find(conn, organization, slug, include_global=False)
    if found is None:
        raise NotFound(f"agent {slug} not found")
    conn.execute(agents.delete().where(agents.c.id == found.id))


def record_card(conn: sa.Connection, agent_id: str, card: dict[str, Any], now: datetime) -> None:
    conn.execute(
        agents.update()
        .where(agents.c.id == agent_id)
        .values(card=card, card_fetched_at=now, updated_at=now)
    )


def record_health(
    conn: sa.Connection, agent_id: str, *, error: dict[str, Any] | None, now: datetime
) -> None:
    """Remember the outcome of the latest call: success time, or the error and its time."""
    values: dict[str, Any] = (
        {"last_success_at": now} if error is None else {"last_error": error, "last_error_at": now}
    )
    conn.execute(agents.update().where(agents.c.id == agent_id).values(**values))


def get_document(conn: sa.Connection, name: str) -> dict[str, Any] | None:
    value = conn.execute(
        sa.select(config_documents.c.document).where(config_documents.c.name == name)
    ).scalar()
    return dict(value) if value is not None else None


def put_document(
    conn: sa.Connection, name: str, document: dict[str, Any], *, actor: str, now: datetime
) -> None:
    updated = conn.execute(
        config_documents.update()
        .where(config_documents.c.name == name)
        .values(document=document, updated_at=now, updated_by=actor)
    )
    if updated.rowcount == 0:
        conn.execute(
            config_documents.insert().values(
                name=name, document=document, updated_at=now, updated_by=actor
            )
        )
