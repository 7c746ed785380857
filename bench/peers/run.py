"""Podium next to its peers: the engine benchmark's workloads, interleaved in one run.

    python bench/peers/run.py [--rounds 3] [--only sqlite|postgresql] [--workload W1 ...]
                              [--pg URL]

The peers (LangGraph with its SQLite and PostgreSQL checkpointers, DBOS) are installed into
their own virtual environment, ``bench/peers/.venv``, from ``requirements.txt``, never into
Podium's. Every measurement is a fresh process on a fresh database (a new SQLite file, a new
PostgreSQL schema); the systems take turns within each round, in a rotating order, so that
the machine's drift touches them alike. Prints the median milliseconds per step of each system
and the ratio of the fastest peer to Podium (above 1: Podium is faster).

Settings: each peer at its defaults. LangGraph: ``AsyncSqliteSaver`` / ``AsyncPostgresSaver``,
default durability, ``max_concurrency=50``, async no-op nodes; W3 runs 200 graph invocations
with ``asyncio.gather``. DBOS: async ``@DBOS.workflow`` of ``@DBOS.step`` no-ops, W2 fans out
with ``asyncio.gather``, W3 starts 200 workflows with ``start_workflow_async``. Podium: one
worker, ``PODIUM_WORKER_CONCURRENCY=64``, no-op python agents, as ``bench/engine.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PEERS_VENV = HERE / ".venv"
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
STEPS = {"W1": 200, "W2": 502, "W3": 1000}
SYSTEMS = ("podium", "langgraph", "dbos")


def ensure_peers_venv() -> Path:
    """Create or reuse ``bench/peers/.venv`` with the pinned requirements; its python."""
    python = PEERS_VENV / "bin" / "python"
    requirements = HERE / "requirements.txt"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    stamp = PEERS_VENV / ".installed"
    if python.exists() and stamp.exists() and stamp.read_text() == digest:
        return python
    print("installing the peers into bench/peers/.venv ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-r", str(requirements)], check=True
    )
    stamp.write_text(digest)
    return python


def measure(system: str, db: str, workload: str, pg: str, peers_python: Path) -> float:
    """Milliseconds per step of one fresh run of ``workload`` by ``system`` on ``db``."""
    with tempfile.TemporaryDirectory() as tmp:
        if system == "podium":
            argv = [
                sys.executable,
                str(ROOT / "bench" / "engine.py"),
                "--only",
                db,
                "--workload",
                workload,
                "--repeat",
                "1",
                "--json",
                "--no-floor",
                "--pg",
                pg,
            ]
        else:
            url = str(Path(tmp) / f"{uuid.uuid4().hex}.db") if db == "sqlite" else pg
            argv = [
                str(peers_python),
                str(HERE / "workloads.py"),
                system,
                db,
                workload,
                "--url",
                url,
            ]
        done = subprocess.run(argv, capture_output=True, text=True, cwd=tmp, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"{system} {db} {workload} failed:\n{done.stderr[-2000:]}")
    last = json.loads(done.stdout.strip().splitlines()[-1])
    return float(last["wall_s"]) / STEPS[workload] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--workload", action="append", choices=sorted(STEPS))
    parser.add_argument("--pg", default=os.environ.get("PODIUM_BENCH_DATABASE_URL", PG_DEFAULT))
    args = parser.parse_args()
    peers_python = ensure_peers_venv()
    dbs = [args.only] if args.only else ["sqlite", "postgresql"]
    workloads = args.workload or sorted(STEPS)
    samples: dict[tuple[str, str, str], list[float]] = {}
    for round_ in range(args.rounds):
        order = SYSTEMS[round_ % 3 :] + SYSTEMS[: round_ % 3]
        for db in dbs:
            for workload in workloads:
                for system in order:
                    ms = measure(system, db, workload, args.pg, peers_python)
                    samples.setdefault((db, workload, system), []).append(ms)
                    print(
                        f"round {round_ + 1}: {db} {workload} {system} {ms:.3f} ms/step",
                        file=sys.stderr,
                    )
    header = ("db", "workload", "podium", "langgraph", "dbos", "fastest peer / podium")
    rows = [header]
    for db in dbs:
        for workload in workloads:
            med = {s: statistics.median(samples[(db, workload, s)]) for s in SYSTEMS}
            fastest = min(med["langgraph"], med["dbos"])
            rows.append(
                (
                    db,
                    workload,
                    f"{med['podium']:.3f}",
                    f"{med['langgraph']:.3f}",
                    f"{med['dbos']:.3f}",
                    f"{fastest / med['podium']:.2f}x",
                )
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    print(f"milliseconds per step, median of {args.rounds} rounds")
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
