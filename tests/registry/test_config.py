"""``agents.yaml`` and the routing policy file, loaded at start (both databases)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from podium.agents.base import AgentError
from podium.agents.registry.admission import AgentChecks
from podium.agents.registry.files import load_agents_file, load_routing_policy, load_startup_files
from podium.errors import InvalidInput
from podium.net.urlguard import UrlGuard
from podium.storage.store import SqlStore
from tests.registry.conftest import FakeDns

FILE = """
organizations:
  acme:
    - slug: translator
      url: https://translator.example/a2a
      concurrencyLimit: 4
      timeoutSeconds: 60
    - slug: shouter
      target: tests.registry.agents:shout
      active: false
  global:
    - {slug: shared, target: "podium.agents.demo:echo"}
"""


class Cards:
    def __init__(self) -> None:
        self.fetched: list[str] = []
        self.down = False

    async def __call__(self, url: str, guard: UrlGuard) -> dict[str, Any]:
        self.fetched.append(url)
        if self.down:
            raise AgentError("agent_unreachable", f"agent card at {url} is unreachable")
        return {"name": "T", "version": "1", "url": url, "skills": []}


@pytest.fixture
def cards() -> Cards:
    return Cards()


@pytest.fixture
def checks(cards: Cards) -> AgentChecks:
    dns = FakeDns({"translator.example": ["93.184.216.34"], "intranet.example": ["10.1.1.1"]})
    return AgentChecks(url_guard=UrlGuard(resolver=dns), fetch_card=cards, python_modules=None)


def write(tmp_path: Path, text: str, name: str = "agents.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_loading_registers_every_agent_of_every_organization(
    store: SqlStore, tmp_path: Path, checks: AgentChecks, cards: Cards
) -> None:
    report = load_agents_file(write(tmp_path, FILE), store, checks=checks)
    assert report.created == ["acme/translator", "acme/shouter", "global/shared"]
    translator = store.get_agent("acme", "translator")
    assert (translator.kind, translator.concurrency_limit, translator.timeout_seconds) == (
        "a2a",
        4,
        60,
    )
    assert translator.card is not None
    assert translator.card["name"] == "T"
    shouter = store.get_agent("acme", "shouter")
    assert (shouter.kind, shouter.active) == ("python", False)
    assert store.get_agent("globex", "shared").organization_slug == "global"
    assert cards.fetched == ["https://translator.example/a2a"]


def test_loading_again_is_idempotent_and_applies_changes(
    store: SqlStore, tmp_path: Path, checks: AgentChecks, cards: Cards
) -> None:
    path = write(tmp_path, FILE)
    load_agents_file(path, store, checks=checks)
    first = store.get_agent("acme", "translator")
    again = load_agents_file(path, store, checks=checks)
    assert again.created == []
    assert again.updated == []
    assert sorted(again.unchanged) == ["acme/shouter", "acme/translator", "global/shared"]
    assert store.get_agent("acme", "translator").id == first.id
    assert len(cards.fetched) == 1  # an unchanged agent keeps its card

    changed = FILE.replace("concurrencyLimit: 4", "concurrencyLimit: 8").replace(
        "target: tests.registry.agents:shout", "url: https://translator.example/v2"
    )
    report = load_agents_file(write(tmp_path, changed), store, checks=checks)
    assert sorted(report.updated) == ["acme/translator"]
    assert report.created == ["acme/shouter"]  # its kind changed: replaced
    assert store.get_agent("acme", "translator").concurrency_limit == 8
    assert store.get_agent("acme", "shouter").kind == "a2a"


def test_an_invalid_file_reports_every_problem_and_writes_nothing(
    store: SqlStore, tmp_path: Path, checks: AgentChecks
) -> None:
    text = """
organizations:
  acme:
    - {slug: a, url: "https://intranet.example/"}
    - {slug: b, target: "tests.registry.agents:missing"}
    - {slug: c}
    - {slug: a, target: "podium.agents.demo:echo"}
  Bad_Org:
    - {slug: d, target: "podium.agents.demo:echo", colour: blue}
"""
    with pytest.raises(InvalidInput) as caught:
        load_agents_file(write(tmp_path, text), store, checks=checks)
    paths = {i.path for i in caught.value.issues}
    assert "organizations.Bad_Org[0].colour" in paths  # schema errors come first
    assert store.list_agents(None) == []

    text = text.replace("colour: blue", "").replace("Bad_Org", "globex")
    with pytest.raises(InvalidInput) as caught:
        load_agents_file(write(tmp_path, text), store, checks=checks)
    assert [i.path for i in caught.value.issues] == [
        "organizations.acme[2].target",
        "organizations.acme[3].slug",
    ]
    text = text.replace("    - {slug: c}\n", "").replace(
        '    - {slug: a, target: "podium.agents.demo:echo"}\n', ""
    )
    with pytest.raises(InvalidInput) as caught:
        load_agents_file(write(tmp_path, text), store, checks=checks)
    issues = {i.path: i.message for i in caught.value.issues}
    assert issues["organizations.acme[0].url"] == "resolves to 10.1.1.1, a private address"
    assert "organizations.acme[1].target" in issues
    assert store.list_agents(None) == []


def test_an_unreachable_card_does_not_stop_the_load(
    store: SqlStore, tmp_path: Path, checks: AgentChecks, cards: Cards
) -> None:
    cards.down = True
    report = load_agents_file(write(tmp_path, FILE), store, checks=checks)
    assert "acme/translator" in report.created
    assert report.warnings == [
        "acme/translator: could not fetch the agent card of https://translator.example/a2a: "
        "agent card at https://translator.example/a2a is unreachable"
    ]
    translator = store.get_agent("acme", "translator")
    assert translator.card is None
    assert translator.last_error is not None
    assert translator.last_error["code"] == "agent_card_unavailable"
    cards.down = False
    report = load_agents_file(write(tmp_path, FILE), store, checks=checks)
    assert report.updated == ["acme/translator"]  # the missing card is fetched now
    assert store.get_agent("acme", "translator").card is not None


def test_the_routing_policy_file_becomes_the_stored_policy(store: SqlStore, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rules:\n  - {name: no-ext, effect: deny, agents: ['ext-*']}\n",
        "routing.yaml",
    )
    policy = load_routing_policy(path, store)
    assert policy.document.rules[0].name == "no-ext"
    assert store.get_config("routing-policy") == {
        "mode": "first-match",
        "default": "allow",
        "patterns": {},
        "rules": [{"name": "no-ext", "effect": "deny", "agents": ["ext-*"]}],
        "rateLimits": [],
    }


def test_startup_loads_the_files_named_by_the_environment(store: SqlStore, tmp_path: Path) -> None:
    agents = write(
        tmp_path, "organizations:\n  acme:\n    - {slug: s, target: 'podium.agents.demo:echo'}\n"
    )
    policy = write(tmp_path, "default: deny\n", "routing.yaml")
    report = load_startup_files(
        store, {"PODIUM_AGENTS_FILE": str(agents), "PODIUM_ROUTING_POLICY": str(policy)}
    )
    assert report.agents is not None
    assert report.agents.created == ["acme/s"]
    assert report.policy is not None
    assert report.policy.document.default == "deny"
    assert load_startup_files(store, {}).agents is None
    bad = write(tmp_path, "mode: sometimes\n", "bad.yaml")
    with pytest.raises(InvalidInput, match="PODIUM_ROUTING_POLICY"):
        load_startup_files(store, {"PODIUM_ROUTING_POLICY": str(bad)})
