"""The CLI answers --help and --version without loading the database or HTTP stacks, and its
help pages show flags as flags."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import pytest

from podium import __version__
from podium.cli.lazy import load
from podium.cli.main import Commands, run_cli

HEAVY = ("sqlalchemy", "alembic", "httpx", "a2a", "uvicorn", "fastapi")


def loaded_after(*args: str) -> list[str]:
    """The heavy packages imported by a fresh ``podium ARGS`` process."""
    code = (
        "import sys, json, contextlib, io\n"
        "from podium.cli.main import run_cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    run_cli({list(args)!r})\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return list(json.loads(done.stdout.splitlines()[-1]))


def test_help_and_version_load_no_database_or_http_stack() -> None:
    assert loaded_after("--help") == []
    assert loaded_after("--version") == []


def test_a_commands_help_loads_no_database_or_http_stack() -> None:
    assert loaded_after("runs", "list", "--help") == []


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["--version"]) == 0
    assert capsys.readouterr().out == f"podium {__version__}\n"


@pytest.mark.parametrize("name", sorted(Commands.lazy))
def test_the_listed_help_is_the_commands_own(name: str) -> None:
    entry = Commands.lazy[name]
    real = load(name, entry)
    help_text = inspect.cleandoc(real.help or "").split("\n\n")[0]
    assert " ".join(help_text.split()) == entry.short_help


@pytest.mark.parametrize(
    "args", [[], ["run"], ["runs", "list"], ["definitions", "push"], ["agents", "add"]]
)
def test_flags_show_without_a_value_type(
    args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    assert run_cli([*args, "--help"]) == 0
    page = capsys.readouterr().out
    assert "--help" in page
    assert "<bool>" not in page


def test_an_unknown_command_is_a_usage_error_printed_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_cli(["runs", "bogus"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1
    assert "No such command" in err
