"""Progress reports become events at a bounded rate per step, and the latest is kept."""

from __future__ import annotations

import asyncio
from typing import Any

from podium.engine.progress import ProgressReporter
from tests.support import wait_for


async def test_bursts_are_folded_and_the_last_word_is_written() -> None:
    written: list[dict[str, Any]] = []

    async def write(data: dict[str, Any]) -> None:
        written.append(data)

    reporter = ProgressReporter(write, interval=0.2)
    for i in range(50):
        await reporter({"message": f"m{i}"})
    assert [w["message"] for w in written] == ["m0"]  # the first at once, the rest folded
    await wait_for(lambda: len(written), lambda n: n == 2, timeout=5)
    assert written[-1] == {"message": "m49"}
    await reporter.close()


async def test_a_failing_write_never_reaches_the_agent() -> None:
    async def write(data: dict[str, Any]) -> None:
        raise RuntimeError("database away")

    reporter = ProgressReporter(write, interval=0.0)
    await reporter({"message": "x"})  # does not raise
    assert reporter.written == 0


async def test_close_drops_what_is_pending() -> None:
    written: list[dict[str, Any]] = []

    async def write(data: dict[str, Any]) -> None:
        written.append(data)

    reporter = ProgressReporter(write, interval=0.5)
    await reporter({"message": "first"})
    await reporter({"message": "second"})
    await reporter.close()
    await asyncio.sleep(0.6)  # past the interval: nothing more may appear
    assert [w["message"] for w in written] == ["first"]
