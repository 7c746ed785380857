"""A command that only reads never creates an empty database."""

from __future__ import annotations

from pathlib import Path

import pytest

from podium.cli.main import run_cli

READ_ONLY = [
    ("runs", "list"),
    ("runs", "show", "0123456789abcdef"),
    ("definitions", "list"),
    ("agents", "list"),
    ("keys", "list"),
    ("approvals", "list"),
    ("cache", "stats"),
    ("cache", "list"),
    ("webhooks", "list"),
    ("webhooks", "dead"),
]


@pytest.mark.parametrize("command", READ_ONLY, ids=" ".join)
def test_a_read_in_an_empty_folder_says_there_is_no_database_and_creates_none(
    command: tuple[str, ...],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    code = run_cli(list(command))
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1  # one line, printed once
    assert err.startswith("error: there is no database at .podium/podium.db yet")
    assert "podium migrate" in err
    assert list(tmp_path.iterdir()) == []


def test_a_write_still_creates_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert run_cli(["migrate"]) == 0
    assert (tmp_path / ".podium" / "podium.db").is_file()
    assert run_cli(["runs", "list"]) == 0
    capsys.readouterr()
