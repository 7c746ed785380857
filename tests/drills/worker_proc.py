"""A Podium worker in its own process, for drills that ``kill -9`` it.

    python -m tests.drills.worker_proc URL [--lease S] [--heartbeat S] [--sweep S]
                                           [--poll S] [--concurrency N] [--max-recoveries N]

Run with cwd and ``PYTHONPATH`` at the project root so that ``tests.drills.agents`` imports.
Settings come from the ``PODIUM_*`` environment variables (``PODIUM_MAX_RECOVERIES`` among
them), overridden by the options. Prints ``READY <worker id> <pid>`` on stdout once the worker
is registered and claiming; logs (WARNING and up, or ``PODIUM_DRILL_LOG_LEVEL``) go to
stderr. Stops gracefully on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from podium.agents.base import AgentResolver
from podium.agents.registry.resolver import LocalAgents
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
