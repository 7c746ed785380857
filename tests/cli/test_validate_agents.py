"""``podium definitions validate`` warns, without failing, about agents the local registry
does not know."""

from __future__ import annotations

from pathlib import Path

import pytest

from podium.cli.main import run_cli

DOC = """
metadata: { name: uses-agents, version: 1.0.0 }
orchestration:
  steps:
    - { id: a, agent: echo, input: {} }
    - { id: b, agent: shouter, input: {}, depends_on: [a] }
    - { id: c, agent: ghost, input: {}, depends_on: [a] }
"""


@pytest.fixture
def document(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PODIUM_ORG", raising=False)
    path = tmp_path / "flow.yaml"
    path.write_text(DOC)
    return path


def test_unknown_agents_are_warnings_and_the_check_passes(
    document: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    target = "podium.agents.demo:uppercase"
    assert run_cli(["agents", "add", "shouter", "--target", target, "--database-url", db_url]) == 0
    capsys.readouterr()
    code = run_cli(["definitions", "validate", str(document), "--database-url", db_url])
    captured = capsys.readouterr()
    assert code == 0
    assert captured.out == "valid: uses-agents@1.0.0 (3 steps)\n"
    assert captured.err == (
        "warning: agent 'ghost' is not in the local registry (organization default)\n"
    )


def test_without_a_database_only_built_in_agents_are_known_and_none_is_created(
    document: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["definitions", "validate", str(document)]) == 0
    warnings = capsys.readouterr().err.splitlines()
    assert [w.split("'")[1] for w in warnings] == ["ghost", "shouter"]
    assert all("no local database" in w for w in warnings)
    assert not (document.parent / ".podium").exists()
