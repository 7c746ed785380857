"""Agent cards: fetched from ``/.well-known/agent-card.json`` of v1.0 and v0.3 agents,
normalized alike, cached, and refreshed when the agent changes."""

from __future__ import annotations

import httpx
import pytest
from a2a.types import AgentCapabilities, AgentCard, AgentInterface

from podium.agents.a2a.card import card_to_proto, fetch_card, normalize_card, select_interface
from podium.agents.a2a.client import A2AAgent
from podium.agents.base import AgentError
from tests.agents.a2a_servers import FLAVOURS, AgentFarm, Flavour, closed_port
from tests.agents.conftest import FakeStep


@pytest.mark.parametrize("flavour", FLAVOURS, ids=lambda f: f.path)
async def test_cards_of_v1_and_v03_agents_normalize_alike(
    farm: AgentFarm, flavour: Flavour
) -> None:
    path = flavour.path
    card = await fetch_card(farm.url(path))
    assert card == {
        "name": path,
        "description": path,
        "version": "1.0.0",
        "url": farm.url(path) + "/",
        "protocolVersion": "1.0" if flavour.protocol == "1.0" else "0.3.0",
        "protocolBinding": flavour.binding,
        "capabilities": {
            "streaming": flavour.streaming,
            "pushNotifications": False,
            "extendedAgentCard": False,
        },
        "skills": [{"id": path, "name": path, "description": path, "tags": [path]}],
        "defaultInputModes": ["text/plain", "application/json"],
        "defaultOutputModes": ["text/plain", "application/json"],
    }


async def test_a_v03_card_is_served_in_the_v03_shape(farm: AgentFarm) -> None:
    """The v0.3 test agent really publishes a v0.3 card (no ``supportedInterfaces``)."""
    async with httpx.AsyncClient() as client:
        raw = (await client.get(farm.url("v03-poll") + "/.well-known/agent-card.json")).json()
    assert raw["protocolVersion"] == "0.3.0"
    assert raw["url"] == farm.url("v03-poll") + "/"
    assert "supportedInterfaces" not in raw


async def test_refreshing_the_card_sees_a_new_version(farm: AgentFarm) -> None:
    hosted = farm.hosted["v1-poll"]
    agent = A2AAgent("remote", farm.url("v1-poll"), poll_interval=0.02)
    assert agent.card is None
    first = await agent.invoke({"text": "x"}, FakeStep().context())
    assert first["agent"]["cardVersion"] == "1.0.0"
    try:
        hosted.version = "2.0.0"
        cached = await agent.invoke({"text": "x"}, FakeStep().context())
        assert cached["agent"]["cardVersion"] == "1.0.0"  # the cached card until refreshed

        refreshed = await agent.refresh_card()

        assert refreshed["version"] == "2.0.0"
        assert agent.card == refreshed
        after = await agent.invoke({"text": "x"}, FakeStep().context())
        assert after["agent"]["cardVersion"] == "2.0.0"
    finally:
        hosted.version = "1.0.0"


async def test_a_cached_card_saves_the_card_request(farm: AgentFarm) -> None:
    card = await fetch_card(farm.url("v1-poll"))
    urls: list[str] = []

    async def record(url: str) -> None:
        urls.append(url)

    agent = A2AAgent("remote", farm.url("v1-poll"), card=card, connect_hook=record)
    await agent.invoke({"text": "x"}, FakeStep().context())
    assert urls
    assert not [u for u in urls if u.endswith("agent-card.json")]


async def test_fetching_a_card_classifies_failures(farm: AgentFarm) -> None:
    with pytest.raises(AgentError) as missing:
        await fetch_card(farm.server.url("nobody-here"))
    assert missing.value.code == "agent_not_found"
    with pytest.raises(AgentError) as closed:
        await fetch_card(f"http://127.0.0.1:{closed_port()}")
    assert (closed.value.code, closed.value.retryable) == ("agent_unreachable", True)


def test_a_normalized_card_round_trips_through_the_sdk_card() -> None:
    card = {
        "name": "n",
        "description": "d",
        "version": "3",
        "url": "http://a.test/rpc",
        "protocolVersion": "0.3.0",
        "protocolBinding": "JSONRPC",
        "capabilities": {"streaming": True, "pushNotifications": True, "extendedAgentCard": False},
        "skills": [{"id": "s", "name": "S", "description": "sd", "tags": ["t"]}],
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": [],
    }
    assert normalize_card(card_to_proto(card)) == card


def test_the_interface_chosen_is_the_first_binding_at_its_best_version() -> None:
    card = AgentCard(
        capabilities=AgentCapabilities(),
        supported_interfaces=[
            AgentInterface(url="grpc://a", protocol_binding="GRPC", protocol_version="1.0"),
            AgentInterface(url="http://old", protocol_binding="JSONRPC", protocol_version="0.3"),
            AgentInterface(url="http://new", protocol_binding="JSONRPC", protocol_version="1.0"),
            AgentInterface(url="http://rest", protocol_binding="HTTP+JSON", protocol_version="1.0"),
        ],
    )
    chosen = select_interface(card)
    assert chosen is not None
    assert chosen.url == "http://new"


def test_a_card_without_a_usable_interface_is_refused() -> None:
    card = AgentCard(supported_interfaces=[AgentInterface(url="grpc://a", protocol_binding="GRPC")])
    with pytest.raises(AgentError) as caught:
        normalize_card(card, source="http://a.test/.well-known/agent-card.json")
    assert (caught.value.code, caught.value.retryable) == ("agent_execution_error", False)
