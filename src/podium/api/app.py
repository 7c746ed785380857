"""The application factory: ``create_app(settings)`` for uvicorn and tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from podium import __version__
from podium.agents.registry import LocalAgents
from podium.api.routers import actions, definitions, ops, runs, stream
from podium.engine.worker import Worker
from podium.settings import Settings
from podium.storage.store import SqlStore


def create_app(
    settings: Settings,
    *,
    store: SqlStore | None = None,
    worker: bool = True,
    agents: LocalAgents | None = None,
) -> FastAPI:
    """A Podium API. It opens (and migrates) the database at startup unless ``store`` is
    given, and runs an embedded worker unless ``worker`` is False (API-only instances)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_store = store is None
        app.state.store = store or SqlStore.open(settings.database_url)
        task: asyncio.Task[None] | None = None
        embedded: Worker | None = None
        if worker:
            embedded = Worker(app.state.store, agents or LocalAgents(), settings)
            task = asyncio.create_task(embedded.run(), name="podium-embedded-worker")
        app.state.worker = embedded
        try:
            yield
        finally:
            if embedded is not None and task is not None:
                embedded.stop()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if own_store:
                app.state.store.close()

    app = FastAPI(
        title="Podium",
        version=__version__,
        description="Durable orchestration of AI agent workflows.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    for module in (definitions, runs, actions, stream, ops):
        app.include_router(module.router)
    return app
