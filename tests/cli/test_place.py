"""``with_place``: every command that talks to a server or the local database takes the same
``--url``, ``--api-key`` and ``--database-url`` (and ``--org`` where the local operator acts
for an organization), listed in the same place of its help, and receives them as one
:class:`Place`."""

from __future__ import annotations

import re

import pytest
import typer

from podium.cli.lazy import load
from podium.cli.main import Commands, run_cli
from podium.cli.place import Place, with_place

PLACED = ["--url", "--api-key", "--database-url"]
ORGANIZATION_GROUPS = ("agents", "cache", "webhooks")  # the local operator acts for --org


def options_of(path: list[str]) -> list[str]:
    """The long options of ``podium PATH``, in the order its help lists them."""
    name, *rest = path
    command = load(name, Commands.lazy[name])
    for word in rest:
        command = command.commands[word]  # a group: its subcommands by name
    return [p.opts[0] for p in command.params if p.opts and p.opts[0].startswith("--")]


@pytest.mark.parametrize(
    "command",
    [
        "runs list",
        "definitions activate",
        "approvals approve",
        "approvals reject",
        "keys revoke",
        "retry",
        "doctor",
        "agents disable",
        "cache clear",
        "webhooks enable",
        "webhooks replay",
    ],
)
def test_the_place_options_come_last_before_json(command: str) -> None:
    path = command.split()
    options = options_of(path)
    placed = ["--org", *PLACED] if path[0] in ORGANIZATION_GROUPS else PLACED
    at = options.index(placed[0])
    assert options[at : at + len(placed)] == placed
    assert options[at + len(placed) :] in ([], ["--json"])


def test_a_command_receives_its_options_and_the_place() -> None:
    seen: list[tuple[str, bool, Place]] = []

    @with_place(org=True)
    def command(name: str, json_output: bool = False, *, place: Place) -> None:
        seen.append((name, json_output, place))

    command("x", url="http://podium:8080", api_key="k", database_url=None, org=None)
    command("y", True, url=None, api_key=None, database_url="sqlite:///p.db", org="acme")
    assert seen == [
        ("x", False, Place(url="http://podium:8080", api_key="k")),
        ("y", True, Place(database_url="sqlite:///p.db", organization="acme")),
    ]
    assert seen[0][2].remote
    assert not seen[1][2].remote


def test_an_organization_with_a_server_is_a_usage_error() -> None:
    with (
        pytest.raises(typer.BadParameter, match="with --url the API key's organization"),
        Place(url="http://podium:8080", organization="acme").backend(),
    ):
        pass


def test_the_place_options_are_documented_once(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["webhooks", "test", "--help"]) == 0
    page = capsys.readouterr().out
    for option in ("--org", *PLACED):
        assert len(re.findall(rf"{option}\b", page)) >= 1
    assert page.count("Podium server to talk to") == 1
