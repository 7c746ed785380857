"""Definitions: validate, push a version, list, show, activate and deactivate."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from podium.domain.definition import parse_definition
from podium.engine.launcher import check_child_graph
from podium.errors import DefinitionInvalid
from podium.service.actors import Actor
from podium.service.views import DefinitionSummary, DefinitionView, ValidationView
from podium.storage.store import SqlStore

Source = str | bytes | Mapping[str, Any]


def validate(source: Source) -> ValidationView:
    """Every problem of a definition document, without saving anything."""
    try:
        definition = parse_definition(source)
    except DefinitionInvalid as exc:
        name, version = _identity(source)
        return ValidationView(
            valid=False,
            name=name,
            version=version,
            issues=[{"path": i.path, "message": i.message} for i in exc.issues],
        )
    return ValidationView(
        valid=True,
        name=definition.metadata.name,
        version=definition.metadata.version,
        steps=len(definition.orchestration.steps),
        issues=[],
    )


def _identity(source: Source) -> tuple[str | None, str | None]:
    """Best effort: ``metadata.name`` and ``metadata.version`` of a document that did not
    validate, to name it in messages."""
    document: Any = source
    if isinstance(source, str | bytes):
        try:
            document = yaml.safe_load(source)
        except yaml.YAMLError:
            return None, None
    metadata = document.get("metadata") if isinstance(document, Mapping) else None
    if not isinstance(metadata, Mapping):
        return None, None
    name, version = metadata.get("name"), metadata.get("version")
    return (
        name if isinstance(name, str) else None,
        version if isinstance(version, str) else None,
    )


def push(
    store: SqlStore, actor: Actor, source: Source, *, activate: bool = True
) -> tuple[DefinitionView, bool]:
    """Store a new version (``active``, or ``draft`` without ``activate``); pushing the
    same document again is a no-op. Returns the version and whether it was created."""
    actor.require("admin", "push definitions")
    definition = parse_definition(source)
    check_child_graph(store, definition, organization=actor.organization)
    record, created = store.push_definition(
        actor.organization, definition, status="active" if activate else "draft"
    )
    return DefinitionView.of(record), created


def list_definitions(
    store: SqlStore, actor: Actor, *, status: str | None = None
) -> list[DefinitionSummary]:
    """Definitions visible to the actor (its own and ``global``), each with its versions."""
    records = store.list_definitions(actor.organization, statuses=(status,) if status else ())
    grouped: dict[tuple[str, str], list[DefinitionView]] = {}
    for r in records:
        grouped.setdefault((r.organization_slug, r.name), []).append(
            DefinitionView.of(r, document=False)
        )
    summaries = []
    for (org, name), versions in grouped.items():
        active = [v for v in versions if v.status == "active"]
        summaries.append(
            DefinitionSummary(
                name=name,
                organizationSlug=org,
                displayName=versions[0].displayName,
                latestActive=active[0].version if active else None,  # newest first
                versions=versions,
            )
        )
    return summaries


def show(store: SqlStore, actor: Actor, name: str, version: str | None = None) -> DefinitionView:
    """One version with its document; without ``version`` the latest active one."""
    if version is None:
        return DefinitionView.of(store.resolve_definition(actor.organization, name, None))
    return DefinitionView.of(store.get_definition(actor.organization, name, version))


def set_status(
    store: SqlStore, actor: Actor, name: str, version: str, status: str
) -> DefinitionView:
    """Activate or deactivate (or archive) one of the actor's organization's versions."""
    actor.require("admin", f"set definitions {status}")
    return DefinitionView.of(store.set_definition_status(actor.organization, name, version, status))
