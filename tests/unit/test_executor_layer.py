"""The executor and its seam do not import storage: a step cache or a metrics hook plugs in
through ``StepPorts``, never by the executor reaching into the database layer."""

from __future__ import annotations

import subprocess
import sys


def test_the_executor_imports_neither_storage_nor_sqlalchemy() -> None:
    probe = (
        "import sys, podium.engine.executor, podium.engine.attempt; "
        "print(sorted(m for m in sys.modules "
        "if m.startswith(('podium.storage', 'sqlalchemy'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
