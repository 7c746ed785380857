"""The application factory: ``create_app(settings)`` for uvicorn and tests.

Request path, outermost first: :class:`~podium.api.errors.ProblemGuard` (errors become
problem+json), :class:`~podium.api.auth.AccessGate` (API key, rate limit),
:class:`~podium.api.limits.BodyLimit` (413), then the routers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from podium import __version__
from podium.agents.base import AgentResolver
from podium.agents.registry import LocalAgents, Registry
from podium.api import errors, openapi
from podium.api.auth import AccessGate, keys_required
from podium.api.limits import BodyLimit, TokenBuckets
from podium.api.routers import actions, admin_agents, definitions, diagnostics, ops, runs, stream
from podium.engine.worker import Worker
from podium.settings import Settings
from podium.storage.store import SqlStore


def create_app(
    settings: Settings,
    *,
    store: SqlStore | None = None,
    worker: bool = True,
    agents: AgentResolver | None = None,
    owns_agents: bool = False,
) -> FastAPI:
    """A Podium API. It opens (and migrates) the database at startup unless ``store`` is
    given (the caller then closes it), and runs an embedded worker unless ``worker`` is False
    (API-only instances). The worker finds agents with ``agents``, by default the agent
    registry (registered agents, routing policy, then the built-in demo agents); the app
    closes ``agents`` at shutdown if it made them or ``owns_agents``. API keys are
    required unless ``settings`` listen on loopback without ``require_keys``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_store = store is None
        app.state.store = store or SqlStore.open(settings.database_url)
        task: asyncio.Task[None] | None = None
        embedded: Worker | None = None
        if worker:
            owned = agents is None or owns_agents
            resolver = agents or Registry(app.state.store, builtins=LocalAgents())
            embedded = Worker(app.state.store, resolver, settings, close_agents=owned)
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
    if store is not None:
        app.state.store = store  # usable before (or without) the lifespan, e.g. in tests
    for module in (definitions, runs, actions, stream, admin_agents, ops, diagnostics):
        app.include_router(module.router)
    errors.install_handlers(app)
    required = keys_required(settings)
    # added innermost first: each add_middleware wraps the ones before it
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        AccessGate,
        required=required,
        organization=settings.organization,
        store=lambda: app.state.store,
        buckets=TokenBuckets(settings.rate_limit),
    )
    app.add_middleware(errors.ProblemGuard)
    openapi.install(app, keys_required=required)
    return app
