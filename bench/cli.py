"""CLI start-up benchmark: how long a new user waits for ``podium --help``, ``--version``, a
command's ``--help`` and ``podium runs list`` on SQLite (targets: 0.3 s for every help and
``--version``, 0.6 s for ``runs list``).

Each command runs as a fresh process ``--runs`` times (after one warm-up, so the figures are
not the first read of the files from disk); it prints the median wall time, and the median
CPU time (user + system of the child), which a loaded machine disturbs less. Modules are
compiled once into a private bytecode cache, as an installed package's are, whatever
``PYTHONDONTWRITEBYTECODE`` says. ``--src`` times another checkout's ``src`` folder (a
before/after comparison: run both back to back).

    python bench/cli.py [--runs 5] [--src ../other/src]
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
    "podium serve --help": (["serve", "--help"], 0.3),
    "podium doctor --help": (["doctor", "--help"], 0.3),
    "podium runs list (SQLite)": (["runs", "list"], 0.6),
    "podium agents list (SQLite)": (["agents", "list"], None),
    "podium keys list (SQLite)": (["keys", "list"], None),
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


def environment(folder: Path, src: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODIUM_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
    env["DATABASE_URL"] = f"sqlite:///{folder / 'bench.db'}"
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--src", help="a checkout's src folder to time instead of this one")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        env = environment(Path(name), options.src)
        subprocess.run(
            [sys.executable, "-m", "podium.cli.main", "migrate"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        print(f"{'command':<30} {'wall (median)':>14} {'cpu (median)':>13} {'target':>7}")
        for label, (args, target) in TARGETS.items():
            timed(args, env)  # warm-up (and the bytecode cache)
            samples = [timed(args, env) for _ in range(options.runs)]
            wall = statistics.median(s[0] for s in samples)
            cpu = statistics.median(s[1] for s in samples)
            goal = f"{target:>6.1f}s" if target is not None else f"{'-':>7}"
            print(f"{label:<30} {wall:>13.3f}s {cpu:>12.3f}s {goal}")


if __name__ == "__main__":
    main()
