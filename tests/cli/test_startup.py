"""The CLI answers --help and --version without loading the database or HTTP stacks (or
pydantic), ``podium runs list`` without Alembic or the web stack, and its help pages show
flags as flags."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys

import pytest

from podium import __version__
from podium.cli.lazy import load
from podium.cli.main import Commands, run_cli
from podium.storage.store import SqlStore

HEAVY = (
    "sqlalchemy",
    "alembic",
    "httpx",
    "a2a",
    "uvicorn",
    "fastapi",
    "starlette",
    "pydantic",
    "yaml",
    "prometheus_client",
)
# what `podium runs list` needs is the store and the views, not these
NOT_FOR_A_LIST = ("alembic", "httpx", "a2a", "uvicorn", "fastapi", "starlette", "yaml")
NOT_FOR_A_LIST_OF_OURS = (
    "podium.doctor",
    "podium.engine",
    "podium.api",
    "podium.agents",
    "podium.domain.definition",
)
# nor, on SQLite, PostgreSQL's dialect (about a tenth of its start-up) and driver
NOT_ON_SQLITE = ("sqlalchemy.dialects.postgresql", "psycopg")


def command_paths() -> list[list[str]]:
    """Every command and subcommand, as its words after ``podium``."""
    paths: list[list[str]] = []
    for name, entry in Commands.lazy.items():
        subcommands = getattr(load(name, entry), "commands", None)
        paths += [[name, sub] for sub in subcommands] if subcommands else [[name]]
    return paths


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


def test_no_commands_help_loads_a_heavy_package() -> None:
    """One fresh process asks every command for its help in turn; a heavy package is blamed
    on the first command after which it is loaded (modules stay loaded)."""
    paths = command_paths()
    assert len(paths) > 40
    code = (
        "import sys, json, contextlib, io\n"
        "from podium.cli.main import run_cli\n"
        "blamed = {}\n"
        f"for path in {paths!r}:\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        assert run_cli([*path, '--help']) == 0, path\n"
        f"    for m in {HEAVY!r}:\n"
        "        if m in sys.modules and m not in blamed:\n"
        "            blamed[m] = ' '.join(path)\n"
        "print(json.dumps(blamed))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    assert json.loads(done.stdout.splitlines()[-1]) == {}


def test_runs_list_on_sqlite_loads_no_alembic_web_stack_engine_or_postgresql(
    sqlite_url: str,
) -> None:
    SqlStore.open(sqlite_url).close()  # an up-to-date schema: nothing to migrate
    code = (
        "import sys, json, contextlib, io\n"
        "from podium.cli.main import run_cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert run_cli(['runs', 'list']) == 0\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{NOT_FOR_A_LIST!r} or m.startswith({NOT_FOR_A_LIST_OF_OURS + NOT_ON_SQLITE!r}))))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODIUM_")}
    env["DATABASE_URL"] = sqlite_url
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []


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
