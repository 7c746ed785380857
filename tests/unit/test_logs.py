"""Log records carry fields, and ``PODIUM_LOG_FORMAT=json`` prints one JSON object per line."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest

from podium.logs import FIELDS, bind_fields, current_fields, install, log_fields


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    install(handler, "json", "%(message)s")
    logger = logging.getLogger("podium.test-logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_fields_of_a_block_and_of_extra_reach_the_json_line(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    with log_fields(run_id="r1", step_id="fetch", attempt=2, agent=None):
        logger.info("started %s", "x", extra={"worker_id": "w1", "step_id": "own"})
    logger.warning("outside")
    first, second = lines(stream)
    assert first["message"] == "started x"
    assert first["level"] == "info"
    assert first["logger"] == "podium.test-logs"
    assert (first["run_id"], first["step_id"], first["attempt"], first["worker_id"]) == (
        "r1",
        "own",  # a call's own extra= wins over the context
        2,
        "w1",
    )
    assert "agent" not in first  # None values are left out
    assert set(second) == {"time", "level", "logger", "message"}


def test_an_exception_stays_inside_its_json_line(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("failed")
    [entry] = lines(stream)
    assert "RuntimeError: boom" in str(entry["exception"])


async def test_each_task_keeps_the_fields_it_bound() -> None:
    async def step(name: str, started: asyncio.Event, other: asyncio.Event) -> object:
        bind_fields(step_id=name)
        started.set()
        await other.wait()  # the other task binds its own meanwhile
        return current_fields()["step_id"]

    a, b = asyncio.Event(), asyncio.Event()
    results = await asyncio.gather(step("one", a, b), step("two", b, a))
    assert results == ["one", "two"]
    assert "step_id" not in current_fields()


def test_unknown_field_names_are_refused() -> None:
    with pytest.raises(ValueError, match="runid"), log_fields(runid="x"):
        pass
    assert "run_id" in FIELDS


def test_the_text_format_appends_the_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    install(handler, "text", "%(levelname)s %(message)s")
    logger = logging.getLogger("podium.test-logs-text")
    logger.addHandler(handler)
    logger.propagate = False
    with log_fields(run_id="r1", worker_id="w1"):
        logger.warning("lease lost")
    logger.removeHandler(handler)
    assert stream.getvalue() == "WARNING lease lost [run_id=r1 worker_id=w1]\n"


def test_podium_log_format_json_makes_the_cli_print_json_lines() -> None:
    """The CLI's logging follows PODIUM_LOG_FORMAT: every stderr log line parses as JSON."""
    code = (
        "import logging; from podium.cli.options import configure_logging;"
        "from podium.logs import log_fields;"
        "configure_logging(logging.INFO);"
        "ctx = log_fields(run_id='r9');ctx.__enter__();"
        "logging.getLogger('podium.x').info('hello')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PODIUM_LOG_FORMAT": "json", "PATH": "/usr/bin:/bin"},
        check=True,
    )
    [entry] = [json.loads(line) for line in done.stderr.splitlines()]
    assert (entry["message"], entry["run_id"]) == ("hello", "r9")
