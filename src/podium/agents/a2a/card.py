"""Agent Cards: fetching one from ``/.well-known/agent-card.json`` and the normalized form
Podium caches in its registry (spec section 7).

The normalized card is the same for agents speaking A2A v1.0 and v0.3 (the SDK reads both)::

    {"name", "description", "version",
     "url",              # where the agent takes JSON-RPC (or HTTP+JSON) calls
     "protocolVersion",  # "1.0", "0.3.0", ... of that interface
     "protocolBinding",  # "JSONRPC" or "HTTP+JSON"
     "capabilities": {"streaming", "pushNotifications", "extendedAgentCard"},
     "skills": [{"id", "name", "description", "tags"}],
     "defaultInputModes", "defaultOutputModes"}

:func:`card_to_proto` turns it back into the SDK's ``AgentCard``, enough to open a client
without fetching the card again.
"""

from __future__ import annotations

from typing import Any

import httpx
from a2a.client import A2ACardResolver
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill
from a2a.utils.constants import AGENT_CARD_WELL_KNOWN_PATH, TransportProtocol

from podium.agents.a2a.transport import HttpOptions, classify
from podium.agents.base import AgentError
from podium.domain.outcomes import ErrorCode

CARD_PATH = AGENT_CARD_WELL_KNOWN_PATH
BINDINGS = (TransportProtocol.JSONRPC.value, TransportProtocol.HTTP_JSON.value)


def card_url(base_url: str) -> str:
    """Where the agent at ``base_url`` publishes its card."""
    return base_url.rstrip("/") + CARD_PATH


async def fetch_card(url: str, *, http: HttpOptions | None = None) -> dict[str, Any]:
    """Fetch and normalize the card of the agent at base URL ``url``.

    Raises :class:`~podium.agents.base.AgentError`: ``agent_not_found`` (HTTP 404),
    ``agent_auth_required`` (401/403), ``agent_unreachable`` (refused, DNS, TLS),
    ``agent_execution_error`` (5xx/429 retryable; a card that is not valid JSON or offers no
    interface Podium speaks, not retryable), or whatever ``http.connect_hook`` raised.
    """
    options = http or HttpOptions()
    async with options.open() as client:
        return await fetch_card_with(client, url, request_timeout=options.request_timeout)


async def fetch_card_with(
    client: httpx.AsyncClient, url: str, *, request_timeout: float
) -> dict[str, Any]:
    """:func:`fetch_card` over an open ``httpx.AsyncClient``."""
    try:
        card = await A2ACardResolver(client, url).get_agent_card(
            http_kwargs={"timeout": request_timeout}
        )
    except Exception as exc:
        raise classify(exc, url=card_url(url), card=True) from exc
    return normalize_card(card, source=card_url(url))


def _version_key(version: str) -> int:
    """Preference of an interface's protocol version: 1.0 first, then later versions, then
    0.x (the v0.3 compatibility layer), then unreadable ones."""
    try:
        major, minor = (int(p) for p in version.split(".")[:2])
    except ValueError:
        return 3
    if (major, minor) == (1, 0):
        return 0
    return 1 if major >= 1 else 2


def select_interface(card: AgentCard) -> AgentInterface | None:
    """The interface Podium uses: the agent's first offered binding that Podium speaks, at
    its best protocol version (1.0 before later versions before 0.3)."""
    offered = [i for i in card.supported_interfaces if i.protocol_binding in BINDINGS]
    if not offered:
        return None
    binding = offered[0].protocol_binding
    same = [i for i in offered if i.protocol_binding == binding]
    best: AgentInterface = min(same, key=lambda i: _version_key(i.protocol_version))
    return best


def normalize_card(card: AgentCard, *, source: str = "") -> dict[str, Any]:
    """The normalized card (module docstring); ``agent_execution_error`` if the card offers
    no JSON-RPC or HTTP+JSON interface."""
    interface = select_interface(card)
    if interface is None or not interface.url:
        raise AgentError(
            ErrorCode.AGENT_EXECUTION_ERROR,
            f"agent card {source} offers no JSONRPC or HTTP+JSON interface",
            retryable=False,
            details={"url": source},
        )
    caps = card.capabilities
    return {
        "name": card.name,
        "description": card.description,
        "version": card.version,
        "url": interface.url,
        "protocolVersion": interface.protocol_version or "1.0",
        "protocolBinding": interface.protocol_binding,
        "capabilities": {
            "streaming": bool(caps.streaming),
            "pushNotifications": bool(caps.push_notifications),
            "extendedAgentCard": bool(caps.extended_agent_card),
        },
        "skills": [
            {"id": s.id, "name": s.name, "description": s.description, "tags": list(s.tags)}
            for s in card.skills
        ],
        "defaultInputModes": list(card.default_input_modes),
        "defaultOutputModes": list(card.default_output_modes),
    }


def card_to_proto(card: dict[str, Any]) -> AgentCard:
    """The SDK ``AgentCard`` for a normalized card (one interface: the selected one)."""
    caps = card.get("capabilities") or {}
    return AgentCard(
        name=str(card.get("name") or ""),
        description=str(card.get("description") or ""),
        version=str(card.get("version") or ""),
        supported_interfaces=[
            AgentInterface(
                url=str(card["url"]),
                protocol_binding=str(card.get("protocolBinding") or "JSONRPC"),
                protocol_version=str(card.get("protocolVersion") or "1.0"),
            )
        ],
        capabilities=AgentCapabilities(
            streaming=bool(caps.get("streaming")),
            push_notifications=bool(caps.get("pushNotifications")),
        ),
        skills=[
            AgentSkill(
                id=str(s.get("id") or ""),
                name=str(s.get("name") or ""),
                description=str(s.get("description") or ""),
                tags=[str(t) for t in s.get("tags") or []],
            )
            for s in card.get("skills") or []
        ],
        default_input_modes=[str(m) for m in card.get("defaultInputModes") or []],
        default_output_modes=[str(m) for m in card.get("defaultOutputModes") or []],
    )
