"""Running ``podium`` as a real process: one-shot commands, and ``podium serve`` in the
background, ready once its banner named its URL and ``/readyz`` answers."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
TIMEOUT = 60
READY_SECONDS = 30
# variables of the developer's shell that would change what a command does
_CLEARED = ("PODIUM_DEBUG", "COLUMNS", "PODIUM_URL", "PODIUM_API_KEY", "PODIUM_ORG")


def env_for(db_url: str | None, url: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    env["PYTHONUNBUFFERED"] = "1"
    if db_url is not None:
        env["DATABASE_URL"] = db_url
    if url is not None:
        env["PODIUM_URL"] = url
    env.update(extra)
    return env


def podium(
    *args: str,
    db_url: str | None = None,
    url: str | None = None,
    timeout: float = TIMEOUT,
    **extra: str,
) -> subprocess.CompletedProcess[str]:
    """Run ``podium ARGS`` to completion (stdout and stderr are pipes, so not a terminal);
    with ``url`` it talks to that server (``PODIUM_URL``)."""
    return subprocess.run(
        [sys.executable, "-m", "podium.cli.main", *args],
        cwd=ROOT,
        env=env_for(db_url, url, **extra),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def podium_together(
    *commands: tuple[str, ...], db_url: str | None = None, url: str | None = None
) -> list[subprocess.CompletedProcess[str]]:
    """Run several ``podium`` commands at once (each a tuple of arguments), to completion;
    their results in the same order. Saves the start-up time of all but one."""
    procs = [start_podium(*args, db_url=db_url, url=url) for args in commands]
    results = []
    for args, proc in zip(commands, procs, strict=True):
        out, err = proc.communicate(timeout=TIMEOUT)
        results.append(subprocess.CompletedProcess(list(args), proc.returncode, out, err))
    return results


def start_podium(
    *args: str, db_url: str | None, url: str | None = None, **extra: str
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "podium.cli.main", *args],
        cwd=ROOT,
        env=env_for(db_url, url, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """Kill ``proc`` if it still runs; its remaining output."""
    if proc.poll() is None:
        proc.kill()
    return proc.communicate(timeout=TIMEOUT)


def assert_no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr
    assert "Traceback" not in result.stdout


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single ``error:`` line a failed command printed (and nothing else on stderr)."""
    assert result.returncode != 0, result.stdout
    assert_no_traceback(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def json_of(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@dataclass
class Server:
    """A ``podium serve`` process and where it listens."""

    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def kill(self) -> None:
        """SIGKILL: a crash, without any graceful shutdown."""
        self.proc.kill()
        self.proc.wait(TIMEOUT)

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(TIMEOUT)


def _wait_ready(proc: subprocess.Popen[bytes], out: Path, log: Path) -> str:
    deadline = time.monotonic() + READY_SECONDS
    url = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"podium serve exited {proc.returncode}:\n{log.read_text()}")
        if url is None:
            found = re.search(r"Podium API on (http://\S+)", out.read_text())
            url = found.group(1) if found else None
        if url is not None:
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
        time.sleep(0.05)  # polling with a deadline, not synchronising
    raise AssertionError(f"podium serve not ready in {READY_SECONDS} s:\n{log.read_text()}")


@contextmanager
def serving(
    db_url: str, workdir: Path, *, port: int = 0, name: str = "server", **extra: str
) -> Iterator[Server]:
    """``podium serve`` on loopback (``port`` 0: a free one) until the block ends."""
    out, log = workdir / f"{name}.out", workdir / f"{name}.log"
    with out.open("wb") as stdout, log.open("ab") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "podium.cli.main", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env_for(db_url, **extra),
            stdout=stdout,
            stderr=stderr,
        )
    try:
        yield Server(proc, _wait_ready(proc, out, log), log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(TIMEOUT)
