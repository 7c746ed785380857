"""API keys: create (shown once), list, revoke."""

from __future__ import annotations

from podium.service.actors import Actor
from podium.service.views import ApiKeyView, CreatedApiKey
from podium.storage.store import SqlStore


def create(
    store: SqlStore, actor: Actor, *, organization: str, role: str, name: str
) -> CreatedApiKey:
    """A new key for ``organization`` (an admin may only create keys for its own)."""
    actor.require("admin", "create API keys")
    if actor.key_id is not None and organization != actor.organization:
        organization = actor.organization
    record, key = store.create_key(organization=organization, role=role, name=name)
    return CreatedApiKey(**ApiKeyView.of(record).model_dump(), key=key)


def list_keys(
    store: SqlStore, actor: Actor, *, all_organizations: bool = False
) -> list[ApiKeyView]:
    actor.require("admin", "list API keys")
    org = None if all_organizations and actor.key_id is None else actor.organization
    return [ApiKeyView.of(k) for k in store.list_keys(org)]


def revoke(store: SqlStore, actor: Actor, key_id: str) -> ApiKeyView:
    actor.require("admin", "revoke API keys")
    org = None if actor.key_id is None else actor.organization
    return ApiKeyView.of(store.revoke_key(key_id, org))
