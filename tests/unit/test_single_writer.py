"""RunTx is the only writer of state and events: outside ``storage/runtx.py`` no module
checks a transition by hand, and the engine's writers (launch, claims, settlements,
recovery, controls, the engine itself) emit no event directly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "podium"
WRITER = SRC / "storage" / "runtx.py"
CHECK = re.compile(r"check_(step|run)_transition\(")
EMIT = re.compile(r"\.emit\(")
EMITTERS_GONE = {
    SRC / "storage" / name
    for name in ("launch.py", "claims.py", "settlements.py", "recovery.py", "controls.py")
} | set((SRC / "engine").glob("*.py"))


def stray(path: Path) -> list[str]:
    found = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if CHECK.search(line) or (path in EMITTERS_GONE and EMIT.search(line)):
            found.append(f"{path.relative_to(SRC)}:{n}: {line.strip()}")
    return found


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_state_and_events_are_written_through_runtx(path: Path) -> None:
    if path == WRITER or path.parent.name == "domain":
        return  # the writer itself; the domain defines the transition table
    assert stray(path) == [], "go through a RunTx method (move_steps, move_run, ...)"
