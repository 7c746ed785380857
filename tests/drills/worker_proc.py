"""A Podium worker in its own process, for drills that ``kill -9`` it.

    python -m tests.drills.worker_proc URL [--lease S] [--heartbeat S] [--sweep S]
                                           [--poll S] [--concurrency N] [--max-recoveries N]
                                           [--api]

Run with cwd and ``PYTHONPATH`` at the project root so that ``tests.drills.agents`` imports.
Settings come from the ``PODIUM_*`` environment variables (``PODIUM_MAX_RECOVERIES`` among
them), overridden by the options. Prints ``READY <worker id> <pid>`` on stdout once the worker
is registered and claiming; logs (WARNING and up, or ``PODIUM_DRILL_LOG_LEVEL``) go to
stderr. Stops gracefully on SIGTERM.

With ``--api`` the process is a ``podium serve``: the API on a free loopback port with its
embedded worker (same agents, same settings). It prints ``API <base url>`` before ``READY``;
the port listens from then on (requests wait in its backlog until the server accepts them).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys

import uvicorn

from podium.agents.base import AgentResolver
from podium.agents.registry.resolver import LocalAgents
from podium.api.app import create_app
from podium.engine.worker import Worker
from podium.settings import Settings
from podium.storage.store import SqlStore
from tests.drills.agents import AGENTS


class ReadyStore(SqlStore):
    """Says ``READY`` once the worker is registered (its row maps its id to this pid), just
    before it starts claiming."""

    def register_worker(self, worker_id: str, concurrency: int) -> None:
        super().register_worker(worker_id, concurrency)
        print(f"READY {worker_id} {os.getpid()}", flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tests.drills.worker_proc")
    p.add_argument("url")
    p.add_argument("--lease", type=float, default=1.5)
    p.add_argument("--heartbeat", type=float, default=0.3)
    p.add_argument("--sweep", type=float, default=0.3)
    p.add_argument("--poll", type=float, default=0.2)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--max-recoveries", type=int, default=None)
    p.add_argument("--api", action="store_true")
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    settings = Settings.from_env(
        database_url=args.url,
        lease_seconds=args.lease,
        heartbeat_seconds=args.heartbeat,
        sweep_seconds=args.sweep,
        poll_seconds=args.poll,
        worker_concurrency=args.concurrency,
        max_recoveries=args.max_recoveries,
    )
    agents = LocalAgents()
    for slug, target in AGENTS.items():
        agents.add_python(slug, target)
    if args.api:
        await serve_api(agents, settings)
    else:
        await work_until_signalled(agents, settings)


async def work_until_signalled(agents: AgentResolver, settings: Settings) -> None:
    """Run a worker (announcing itself, see :class:`ReadyStore`) until SIGTERM or SIGINT."""
    store = ReadyStore.open(settings.database_url, migrate_schema=False)
    try:
        worker = Worker(store, agents, settings)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, worker.stop)
        await worker.run()
    finally:
        store.close()


async def serve_api(agents: AgentResolver, settings: Settings) -> None:
    """Serve the API with its embedded worker (announcing itself, see :class:`ReadyStore`)
    on a free loopback port until SIGTERM or SIGINT (uvicorn's own handlers)."""
    listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listening.bind(("127.0.0.1", 0))
    listening.listen(128)
    print(f"API http://127.0.0.1:{listening.getsockname()[1]}", flush=True)
    store = ReadyStore.open(settings.database_url, migrate_schema=False)
    try:
        app = create_app(settings, store=store, agents=agents)
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        await uvicorn.Server(config).serve(sockets=[listening])
    finally:
        store.close()
        listening.close()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("PODIUM_DRILL_LOG_LEVEL", "WARNING"),
        stream=sys.stderr,
        format=f"%(asctime)s pid={os.getpid()} %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(serve(parse_args(sys.argv[1:] if argv is None else argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
