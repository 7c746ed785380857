"""The JSON shapes of the agent registry and the routing policy (camelCase, like every view):
the requests of ``/api/admin/agents`` and the agents as the API, the CLI and the runbook's
check (``GET /api/admin/agents/:slug``) show them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from podium.agents.registry.admission import AgentUrl, Target
from podium.service.views import View

if TYPE_CHECKING:  # the views are also read back by the HTTP client, without storage
    from podium.storage.agents import AgentRecord


class AgentChanges(BaseModel):
    """``PATCH /api/admin/agents/:slug``: only the fields given change; ``null`` clears
    ``concurrencyLimit`` or ``timeoutSeconds``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: AgentUrl | None = None
    target: Target | None = None
    active: bool | None = None
    concurrencyLimit: int | None = Field(default=None, ge=1, le=10_000)
    timeoutSeconds: float | None = Field(default=None, gt=0, le=86_400)


class SkillView(View):
    id: str
    name: str | None = None
    description: str | None = None
    tags: list[str] = Field(default_factory=list)


class CardSummary(View):
    """The cached Agent Card, in brief."""

    name: str | None = None
    version: str | None = None
    description: str | None = None
    protocolVersion: str | None = None
    protocolBinding: str | None = None
    streaming: bool = False
    skills: list[SkillView] = Field(default_factory=list)

    @classmethod
    def of(cls, card: Mapping[str, Any]) -> CardSummary:
        capabilities = card.get("capabilities") or {}
        return cls(
            name=_text(card.get("name")),
            version=_text(card.get("version")),
            description=_text(card.get("description")),
            protocolVersion=_text(card.get("protocolVersion")),
            protocolBinding=_text(card.get("protocolBinding")),
            streaming=bool(capabilities.get("streaming")),
            skills=[
                SkillView(
                    id=str(s.get("id") or s.get("name") or ""),
                    name=_text(s.get("name")),
                    description=_text(s.get("description")),
                    tags=[str(t) for t in s.get("tags") or []],
                )
                for s in card.get("skills") or []
                if isinstance(s, Mapping)
            ],
        )


class HealthView(View):
    """``healthy``: the latest recorded call succeeded; ``failing``: it failed (see
    ``lastError``); ``unknown``: no call recorded yet."""

    status: Literal["healthy", "failing", "unknown"]
    lastSuccessAt: datetime | None = None
    lastErrorAt: datetime | None = None
    lastError: dict[str, Any] | None = None

    @classmethod
    def of(cls, record: AgentRecord | None) -> HealthView:
        if record is None:
            return cls(status="unknown")
        ok, failed = record.last_success_at, record.last_error_at
        status: Literal["healthy", "failing", "unknown"] = "unknown"
        if failed is not None and (ok is None or failed >= ok):
            status = "failing"
        elif ok is not None:
            status = "healthy"
        return cls(status=status, lastSuccessAt=ok, lastErrorAt=failed, lastError=record.last_error)


class AgentView(View):
    """An agent as listed. ``builtin`` agents are the in-process demo agents of ``global``;
    a registered agent with the same slug takes precedence over them."""

    slug: str
    organizationSlug: str
    kind: str
    url: str | None = None
    target: str | None = None
    active: bool
    builtin: bool = False
    concurrencyLimit: int | None = None
    timeoutSeconds: float | None = None
    card: CardSummary | None = None
    cardFetchedAt: datetime | None = None
    health: HealthView
    createdAt: datetime | None = None
    updatedAt: datetime | None = None

    @classmethod
    def of(cls, record: AgentRecord) -> AgentView:
        return cls(**_fields(record))

    @classmethod
    def builtin_agent(cls, slug: str, fn: Callable[..., Any]) -> AgentView:
        return cls(
            slug=slug,
            organizationSlug="global",
            kind="python",
            target=f"{fn.__module__}:{fn.__qualname__}",
            active=True,
            builtin=True,
            health=HealthView(status="unknown"),
        )


class AgentDetail(AgentView):
    """One agent (``GET /api/admin/agents/:slug``), with the whole cached card."""

    cardDocument: dict[str, Any] | None = None

    @classmethod
    def of(cls, record: AgentRecord) -> AgentDetail:
        return cls(**_fields(record), cardDocument=record.card)

    @classmethod
    def of_view(cls, view: AgentView) -> AgentDetail:
        return cls(**view.model_dump())


def _fields(record: AgentRecord) -> dict[str, Any]:
    return {
        "slug": record.slug,
        "organizationSlug": record.organization_slug,
        "kind": record.kind,
        "url": record.url,
        "target": record.target,
        "active": record.active,
        "concurrencyLimit": record.concurrency_limit,
        "timeoutSeconds": record.timeout_seconds,
        "card": CardSummary.of(record.card) if record.card else None,
        "cardFetchedAt": record.card_fetched_at,
        "health": HealthView.of(record),
        "createdAt": record.created_at,
        "updatedAt": record.updated_at,
    }


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
