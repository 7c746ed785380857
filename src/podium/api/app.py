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
from fastapi.staticfiles import StaticFiles

from podium import __version__
from podium.agents.base import AgentResolver
from podium.agents.registry.resolver import LocalAgents, Registry
from podium.api import errors, openapi
from podium.api.auth import AccessGate, keys_required
from podium.api.limits import BodyLimit, TokenBuckets
from podium.api.routers import (
    actions,
    admin_agents,
    admin_cache,
    admin_keys,
    admin_webhooks,
    approvals,
    definitions,
    diagnostics,
    metrics,
    ops,
    runs,
    stream,
    tickets,
)
from podium.domain.limits import ValueLimits
from podium.engine.worker import Worker
from podium.events.webhooks.dispatcher import DispatcherTask
from podium.settings import Settings
from podium.storage.store import SqlStore
from podium.web import routes as web
from podium.web.session import SessionCodec


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
        # the webhook dispatcher runs beside the embedded worker
        webhooks = DispatcherTask.start(app.state.store.webhooks) if worker else None
        app.state.webhook_dispatcher = webhooks
        try:
            yield
        finally:
            if webhooks is not None:
                await webhooks.close()
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
    # approvals before runs: /api/orchestrations/approvals is not a {runId}
    for module in (definitions, approvals, runs, actions, stream, admin_agents, ops, diagnostics):
        app.include_router(module.router)
    for module in (admin_cache, metrics):  # issue 12: step cache admin, Prometheus
        app.include_router(module.router)
    for module in (admin_webhooks, tickets, admin_keys):
        app.include_router(module.router)
    # the dashboard (spec section 17): pages at /, their assets at /static
    app.include_router(web.router)
    app.mount("/static", StaticFiles(directory=web.STATIC), name="static")
    app.add_exception_handler(web.SignInRequired, web.sign_in_redirect)
    errors.install_handlers(app)
    required = keys_required(settings)
    app.state.keys_required = required
    app.state.sessions = SessionCodec(settings.session_secret)
    # added innermost first: each add_middleware wraps the ones before it
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        value_limits=ValueLimits(
            max_depth=settings.max_nesting_depth, max_bytes=settings.max_body_bytes
        ),
    )
    app.add_middleware(
        AccessGate,
        required=required,
        organization=settings.organization,
        store=lambda: app.state.store,
        buckets=TokenBuckets(settings.rate_limit),
        sessions=app.state.sessions,
    )
    app.add_middleware(errors.ProblemGuard)
    openapi.install(app, keys_required=required)
    return app
