"""CLI start-up benchmark: how long a new user waits for ``podium --help``, ``--version``, a
command's ``--help`` and ``podium runs list`` on SQLite (targets: 0.3 s, 0.3 s, 0.3 s, 0.6 s).

Each command runs as a fresh process ``--runs`` times (after one warm-up, so the figures are
not the first read of the files from disk); it prints the median wall time, and the median
CPU time (user + system of the child), which a loaded machine disturbs less.

    python bench/cli.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {
    "podium --help": (["--help"], 0.3),
    "podium --version": (["--version"], 0.3),
    "podium runs list --help": (["runs", "list", "--help"], 0.3),
    "podium run --help": (["run", "--help"], 0.3),
    "podium agents add --help": (["agents", "add", "--help"], 0.3),
    "podium runs list (SQLite)": (["runs", "list"], 0.6),
}


def timed(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one ``podium`` process; fails loudly on a bad exit."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "podium.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"podium {' '.join(args)} exited {done.returncode}: {done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        env = dict(os.environ, DATABASE_URL=f"sqlite:///{Path(folder) / 'bench.db'}")
        env.pop("PODIUM_URL", None)
        subprocess.run([sys.executable, "-m", "podium.cli.main", "migrate"], env=env, check=True)
        print(f"{'command':<28} {'wall (median)':>14} {'cpu (median)':>13} {'target':>7}")
        for name, (args, target) in TARGETS.items():
            timed(args, env)  # warm-up
            samples = [timed(args, env) for _ in range(options.runs)]
            wall = statistics.median(s[0] for s in samples)
            cpu = statistics.median(s[1] for s in samples)
            print(f"{name:<28} {wall:>13.3f}s {cpu:>12.3f}s {target:>6.1f}s")


if __name__ == "__main__":
    main()
