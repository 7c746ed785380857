"""Dependencies shared by the routers: the store and the calling actor."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

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
    """The actor the auth middleware attached to this request."""
    actor: Actor = request.state.actor
    return actor


StoreDep = Annotated[SqlStore, Depends(get_store)]
ActorDep = Annotated[Actor, Depends(get_actor)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
