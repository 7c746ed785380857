"""Per-step cost of the metrics (issue 12) against the engine's per-step database floor,
measured in the same process at the same time (so that a loaded machine skews both alike).

    python bench/metrics_overhead.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from podium import metrics
from podium.storage import observe
from podium.storage.store import SqlStore

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine import floor_ms


def metrics_us_per_step(n: int = 20_000) -> float:
    """What a worker adds per step: queue time, agent call, step duration; plus a run end
    every 5 steps (W3's shape)."""
    t0 = time.perf_counter()
    for i in range(n):
        metrics.step_queued("w3", "s1", 0.01)
        metrics.agent_call("noop", "success")
        metrics.step_finished("w3", "s1", "completed", 0.02)
        if i % 5 == 0:
            observe.deliver([observe.RunEnded("r", "w3", "completed", 1.0)])
    return (time.perf_counter() - t0) / n * 1e6


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqlStore.open(f"sqlite:///{Path(tmp) / 'floor.db'}")
        for _ in range(3):
            before = metrics_us_per_step()
            floor = floor_ms(store)
            after = metrics_us_per_step()
            cost = (before + after) / 2
            print(
                f"metrics {cost:.1f} us/step, floor {floor * 1000:.0f} us/step "
                f"(sqlite): {cost / (floor * 1000) * 100:.2f} % of the floor"
            )
        store.close()


if __name__ == "__main__":
    main()
