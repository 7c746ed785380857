"""Definition versions: push, list, show, activate/deactivate, and resolving what to launch.

A definition belongs to an organization; those of ``global`` are visible to every
organization. Only ``active`` versions can be launched; "latest" is the highest active
semantic version.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import semantic_version
import sqlalchemy as sa

from podium.domain.ids import new_id
from podium.errors import Conflict, InvalidInput, Issue, NotFound
from podium.storage.tables import definitions

if TYPE_CHECKING:
    from podium.domain.definition import Definition

GLOBAL = "global"
STATUSES = ("draft", "active", "inactive", "archived")


@dataclass(frozen=True)
class DefinitionRecord:
    id: str
    organization_slug: str
    name: str
    version: str
    status: str
    display_name: str | None
    description: str | None
    document: dict[str, Any]
    created_at: datetime
    updated_at: datetime


def version_key(version: str) -> str:
    """A string that sorts like the semantic version (prereleases before their release)."""
    v = semantic_version.Version(version)
    release = f"{v.major:06d}.{v.minor:06d}.{v.patch:06d}"
    return f"{release}~{'.'.join(v.prerelease)}" if v.prerelease else f"{release}~~"


def _record(row: sa.RowMapping) -> DefinitionRecord:
    return DefinitionRecord(**{k: v for k, v in row.items() if k != "version_key"})


def push(
    conn: sa.Connection, organization: str, definition: Definition, *, status: str, now: datetime
) -> tuple[DefinitionRecord, bool]:
    """Store a new version; returns it and whether it was created.

    Pushing the same document again returns the stored version unchanged; a different
    document under an existing version is a :class:`Conflict` (versions are immutable).
    """
    meta = definition.metadata
    document = definition.to_document()
    existing = _find(conn, organization, meta.name, meta.version)
    if existing is not None:
        if existing.document != document:
            raise Conflict(
                f"definition {meta.name} version {meta.version} already exists with another "
                "document; versions are immutable: publish a new version"
            )
        return existing, False
    row = {
        "id": new_id(),
        "organization_slug": organization,
        "name": meta.name,
        "version": meta.version,
        "version_key": version_key(meta.version),
        "status": status,
        "display_name": meta.displayName,
        "description": meta.description,
        "document": document,
        "created_at": now,
        "updated_at": now,
    }
    conn.execute(definitions.insert().values(row))
    found = _find(conn, organization, meta.name, meta.version)
    assert found is not None
    return found, True


def _find(
    conn: sa.Connection, organization: str, name: str, version: str
) -> DefinitionRecord | None:
    row = (
        conn.execute(
            sa.select(definitions).where(
                definitions.c.organization_slug == organization,
                definitions.c.name == name,
                definitions.c.version == version,
            )
        )
        .mappings()
        .first()
    )
    return _record(row) if row is not None else None


def list_versions(
    conn: sa.Connection,
    organization: str,
    *,
    name: str | None = None,
    statuses: tuple[str, ...] = (),
    include_global: bool = True,
) -> list[DefinitionRecord]:
    """Versions visible to ``organization``, by name then newest version first."""
    orgs = [organization, GLOBAL] if include_global else [organization]
    query = sa.select(definitions).where(definitions.c.organization_slug.in_(orgs))
    if name is not None:
        query = query.where(definitions.c.name == name)
    if statuses:
        query = query.where(definitions.c.status.in_(statuses))
    query = query.order_by(
        definitions.c.name, definitions.c.organization_slug, definitions.c.version_key.desc()
    )
    return [_record(r) for r in conn.execute(query).mappings()]


def get_version(
    conn: sa.Connection, organization: str, name: str, version: str
) -> DefinitionRecord:
    """One version, the organization's own before ``global``'s."""
    for org in (organization, GLOBAL):
        found = _find(conn, org, name, version)
        if found is not None:
            return found
    raise NotFound(f"definition {name} version {version} not found")


def set_status(
    conn: sa.Connection, organization: str, name: str, version: str, status: str, now: datetime
) -> DefinitionRecord:
    """Change a version's status (only the organization's own versions)."""
    if status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}")
    found = _find(conn, organization, name, version)
    if found is None:
        raise NotFound(f"definition {name} version {version} not found")
    conn.execute(
        definitions.update()
        .where(definitions.c.id == found.id)
        .values(status=status, updated_at=now)
    )
    return get_version(conn, organization, name, version)


def resolve(
    conn: sa.Connection, organization: str, name: str, version: str | None
) -> DefinitionRecord:
    """The active version to launch: the highest matching ``version`` (an exact version or
    an npm-style range such as ``^1``, ``~1.2``, ``>=1.0.0 <2.0.0``), else the highest.

    The organization's own versions are preferred; ``global`` is used when it has none.
    """
    spec = _spec(version)
    for org in (organization, GLOBAL):
        active = list_versions(conn, org, name=name, statuses=("active",), include_global=False)
        if not active:
            continue
        matching = [
            d for d in active if spec is None or spec.match(semantic_version.Version(d.version))
        ]
        if matching:
            return max(matching, key=lambda d: semantic_version.Version(d.version))
        versions = ", ".join(sorted((d.version for d in active), key=semantic_version.Version))
        raise NotFound(
            f"definition {name} has no active version matching {version!r} (active: {versions})"
        )
    raise NotFound(f"definition {name} has no active version")


def _spec(version: str | None) -> semantic_version.NpmSpec | None:
    if version is None or version in ("", "latest", "*"):
        return None
    try:
        return semantic_version.NpmSpec(version)
    except ValueError as exc:
        raise InvalidInput(
            "version is not a version or range",
            [Issue("version", f"{version!r} is not a version or npm-style range: {exc}")],
        ) from exc
