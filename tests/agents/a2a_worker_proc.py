"""A Podium worker in its own process whose agents are A2A agents, for the drill that
``kill -9``s it mid-call.

    python -m tests.agents.a2a_worker_proc DATABASE_URL --agent SLUG=BASE_URL [--agent ...]
                                           [--lease S] [--heartbeat S] [--sweep S] [--poll S]

Run with cwd and ``PYTHONPATH`` at the project root. Prints ``READY <worker id> <pid>`` once
registered (as :mod:`tests.drills.worker_proc` does); stops gracefully on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from podium.agents.a2a.client import A2AAgent
from podium.agents.registry.resolver import LocalAgents
from podium.settings import Settings
from tests.drills.worker_proc import work_until_signalled


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tests.agents.a2a_worker_proc")
    p.add_argument("url")
    p.add_argument("--agent", action="append", default=[], metavar="SLUG=BASE_URL")
    p.add_argument("--lease", type=float, default=1.5)
    p.add_argument("--heartbeat", type=float, default=0.3)
    p.add_argument("--sweep", type=float, default=0.3)
    p.add_argument("--poll", type=float, default=0.2)
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    settings = Settings.from_env(
        database_url=args.url,
        lease_seconds=args.lease,
        heartbeat_seconds=args.heartbeat,
        sweep_seconds=args.sweep,
        poll_seconds=args.poll,
        worker_concurrency=4,
    )
    agents = LocalAgents(builtins=False)
    for spec in args.agent:
        slug, _, url = spec.partition("=")
        agents.add(A2AAgent(slug, url, poll_interval=0.05))
    await work_until_signalled(agents, settings)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s pid={os.getpid()} %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    asyncio.run(serve(parse_args(sys.argv[1:] if argv is None else argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
