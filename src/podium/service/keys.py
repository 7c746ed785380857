"""API keys: create (shown once), list, revoke.

The local operator (the command line on the database) manages every organization's keys;
an admin key only its own organization's: naming another is :class:`Forbidden`, and another
organization's key is not found.
"""

from __future__ import annotations

from podium.errors import Forbidden
from podium.service.actors import Actor
from podium.service.views import ApiKeyView, CreatedApiKey
from podium.storage.store import SqlStore


def _scope(actor: Actor, organization: str | None, action: str) -> str | None:
    """The organization ``action`` is confined to (None: every one, the local operator's
    right); ``organization`` None means the actor's own for a key."""
    if actor.key_id is None:
        return organization
    if organization is not None and organization != actor.organization:
        raise Forbidden(f"an admin key of {actor.organization} cannot {action} {organization}")
    return actor.organization


def create(
    store: SqlStore, actor: Actor, *, organization: str | None, role: str, name: str | None
) -> CreatedApiKey:
    """A new key for ``organization`` (None: the actor's), named ``name`` (None:
    ``role@organization``)."""
    actor.require("admin", "create API keys")
    organization = _scope(actor, organization, "create keys for") or actor.organization
    record, key = store.create_key(
        organization=organization, role=role, name=name or f"{role}@{organization}"
    )
    return CreatedApiKey(**ApiKeyView.of(record).model_dump(), key=key)


def list_keys(store: SqlStore, actor: Actor, organization: str | None = None) -> list[ApiKeyView]:
    """Keys of ``organization``, oldest first; None: of every organization the actor manages."""
    actor.require("admin", "list API keys")
    return [
        ApiKeyView.of(k) for k in store.list_keys(_scope(actor, organization, "list the keys of"))
    ]


def revoke(store: SqlStore, actor: Actor, key_id: str) -> ApiKeyView:
    actor.require("admin", "revoke API keys")
    return ApiKeyView.of(store.revoke_key(key_id, _scope(actor, None, "revoke keys of")))
