"""``podium serve``: the HTTP API, with an embedded worker unless ``--no-worker``.

On loopback the API runs without keys unless ``PODIUM_REQUIRE_KEYS`` is true. On any other
address keys are always required, and the server refuses to start while there is no way to
use it safely: with ``PODIUM_REQUIRE_KEYS=false``, or with neither that variable set to true
nor a live key in the database. SIGTERM or Ctrl-C stops it gracefully: requests in progress
finish and the embedded worker lets its steps in flight finish.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING, Annotated

import typer

from podium.cli.options import (
    AgentTargets,
    DatabaseUrl,
    configure_logging,
    local_agents,
    registry_for,
)
from podium.errors import ConfigurationError

# The web stack, the registry and the store are imported when the command runs, so that
# `podium serve --help` answers without them.
if TYPE_CHECKING:
    from podium.settings import Settings
    from podium.storage.store import SqlStore

# seconds requests and streams get to finish after SIGTERM before they are cancelled
GRACEFUL_SHUTDOWN_SECONDS = 30


def check_exposure(settings: Settings, store: SqlStore) -> None:
    """Refuse to serve an address other machines can reach without API keys."""
    from podium.api.auth import is_loopback

    if is_loopback(settings.host):
        return
    where = f"{settings.host}:{settings.port}"
    if settings.require_keys is False:
        raise ConfigurationError(
            f"PODIUM_REQUIRE_KEYS=false is only allowed on loopback, not on {where}: "
            "API keys are always required there"
        )
    if settings.require_keys is None and not any(k.revoked_at is None for k in store.list_keys()):
        raise ConfigurationError(
            f"refusing to serve {where} without API keys: create one with "
            "`podium keys create --org ORG --role admin` (or set PODIUM_REQUIRE_KEYS=true), "
            "or serve on 127.0.0.1"
        )


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (port 0: any free port); one clear error otherwise."""
    address = host.strip("[]")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve_command(
    host: Annotated[
        str | None,
        typer.Option("--host", help="Address to listen on. [default: 127.0.0.1, PODIUM_HOST]"),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port", min=0, max=65535, help="Port (0: any free one). [default: 8080, PODIUM_PORT]"
        ),
    ] = None,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="Serve the API only; run `podium worker`s apart.")
    ] = False,
    agent: AgentTargets = None,
    agents_file: Annotated[
        str | None,
        typer.Option(
            "--agents",
            metavar="FILE",
            envvar="PODIUM_AGENTS_FILE",
            help="agents.yaml to load into the agent registry at start.",
        ),
    ] = None,
    webhooks_file: Annotated[
        str | None,
        typer.Option(
            "--webhooks",
            metavar="FILE",
            envvar="PODIUM_WEBHOOKS_FILE",
            help="webhooks.yaml to load into the webhook endpoints at start.",
        ),
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Serve the HTTP API (docs at /docs) with an embedded worker, until SIGTERM or Ctrl-C.

    Without API keys only on loopback; on other addresses create a key first
    (`podium keys create`)."""
    import uvicorn

    from podium.agents.registry.files import load_startup_files
    from podium.api.app import create_app
    from podium.api.auth import keys_required
    from podium.cli.uvicorn_server import AnnouncingServer
    from podium.events.webhooks.startup import prepare_webhooks
    from podium.settings import Settings
    from podium.storage.store import SqlStore

    settings = Settings.from_env(database_url=database_url, host=host, port=port)
    local_agents(agent or [])  # check the targets before opening anything
    configure_logging(logging.INFO)
    logging.getLogger("uvicorn.access").setLevel(logging.INFO)
    store = SqlStore.open(settings.database_url)
    try:
        check_exposure(settings, store)
        load_startup_files(store, agents_file=agents_file)
        prepare_webhooks(store.webhooks, webhooks_file=webhooks_file)
        sock = listen(settings.host, settings.port)
        url = base_url(sock)
        app = create_app(
            settings,
            store=store,
            worker=not no_worker,
            agents=None if no_worker else registry_for(store, agent or []),
            owns_agents=True,
        )
        config = uvicorn.Config(
            app,
            log_config=None,
            lifespan="on",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
        keys = "API keys required" if keys_required(settings) else "no API keys (loopback)"
        worker = "no worker" if no_worker else "embedded worker"
        banner = [
            f"Podium API on {url} ({store.describe()}; {worker}; {keys})",
            f"  API docs: {url}/docs",
            f"  health:   {url}/healthz",
            "stop with Ctrl-C or SIGTERM",
        ]
        server = AnnouncingServer(config, banner)
        with sock:
            asyncio.run(server.serve(sockets=[sock]))
    finally:
        store.close()
    raise typer.Exit(130 if server.signals > 1 else 0)
