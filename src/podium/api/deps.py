"""Dependencies shared by the routers: the store, the settings and the calling actor."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from podium.errors import Unauthorized
from podium.service.actors import Actor
from podium.settings import Settings
from podium.storage.store import SqlStore


def get_store(request: Request) -> SqlStore:
    store: SqlStore = request.app.state.store
    return store


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_actor(request: Request) -> Actor:
    """The actor that :class:`~podium.api.auth.AccessGate` attached to this request."""
    actor: Actor | None = getattr(request.state, "actor", None)
    if actor is None:  # a public path (no authentication) asked for an actor
        raise Unauthorized("an API key is required: send 'Authorization: Bearer <key>'")
    return actor


StoreDep = Annotated[SqlStore, Depends(get_store)]
ActorDep = Annotated[Actor, Depends(get_actor)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
