"""Webhook endpoints and their deliveries (spec section 11), scoped by :class:`Actor`.

Reading needs any role; changes, tests and replays need ``admin``. An actor sees only its
organization's endpoints and their deliveries; another organization's, and the global
endpoint of ``ORCHESTRATION_PROGRESS_WEBHOOK_URL``, are "not found". A URL goes through the
URL guard (target N1) when registered or changed, and again at every connection.
"""

from __future__ import annotations

import secrets as random_secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from podium.domain.webhooks import (
    MAX_DEFINITION_FILTERS,
    MAX_EVENT_FILTERS,
    check_event_filter,
)
from podium.events.webhooks.signing import check_secret, new_secret
from podium.net.urlguard import UrlGuard
from podium.service.actors import Actor
from podium.service.views import View
from podium.storage.webhooks import DeliveryRecord, EndpointRecord, WebhookStore

if TYPE_CHECKING:
    from podium.events.webhooks.config import WebhookSettings

MAX_URL_LENGTH = 2048
TICKET_PREFIX = "pst_"
TICKET_SECONDS = 60.0

EventFilters = Annotated[list[str], Field(max_length=MAX_EVENT_FILTERS)]
DefinitionFilters = Annotated[
    list[
        Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    ],
    Field(max_length=MAX_DEFINITION_FILTERS),
]


def _no_nul(value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _filters(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    for i, pattern in enumerate(value):
        problem = check_event_filter(pattern)
        if problem:
            raise ValueError(f"eventTypes[{i}] {pattern!r} {problem}")
    return value


class EndpointRegistration(BaseModel):
    """``POST /api/admin/webhooks``. Without ``secret`` a new one is made; either way the
    response shows it once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(min_length=1, max_length=MAX_URL_LENGTH)
    description: str | None = Field(default=None, max_length=1000)
    eventTypes: EventFilters | None = None
    definitions: DefinitionFilters | None = None
    enabled: bool = True
    secret: str | None = Field(default=None, max_length=200)
    rateLimit: int | None = Field(default=None, ge=1, le=10_000, description="Requests/second.")

    _check_filters = field_validator("eventTypes")(_filters)
    _check_text = field_validator("description", "url")(_no_nul)


class EndpointChanges(BaseModel):
    """``PATCH /api/admin/webhooks/:id``: only the fields given change."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = Field(default=None, min_length=1, max_length=MAX_URL_LENGTH)
    description: str | None = Field(default=None, max_length=1000)
    eventTypes: EventFilters | None = None
    definitions: DefinitionFilters | None = None
    enabled: bool | None = None
    rateLimit: int | None = Field(default=None, ge=1, le=10_000)

    _check_filters = field_validator("eventTypes")(_filters)
    _check_text = field_validator("description", "url")(_no_nul)


class EndpointView(View):
    id: str
    organizationSlug: str
    url: str
    description: str | None = None
    eventTypes: list[str]
    definitions: list[str] | None = None
    enabled: bool
    disabledReason: str | None = None
    rateLimit: int | None = None
    failingSince: datetime | None = None
    previousSecretExpiresAt: datetime | None = None
    createdAt: datetime
    updatedAt: datetime

    @classmethod
    def of(cls, r: EndpointRecord) -> EndpointView:
        return cls(
            id=r.id,
            organizationSlug=r.organization_slug,
            url=r.url,
            description=r.description,
            eventTypes=r.event_types,
            definitions=r.definitions,
            enabled=r.enabled,
            disabledReason=r.disabled_reason,
            rateLimit=r.rate_limit,
            failingSince=r.failing_since,
            previousSecretExpiresAt=r.previous_secret_expires_at,
            createdAt=r.created_at,
            updatedAt=r.updated_at,
        )


class EndpointWithSecret(EndpointView):
    """An endpoint as registered or rotated: the only time its ``secret`` is shown."""

    secret: str

    @classmethod
    def with_secret(cls, r: EndpointRecord) -> EndpointWithSecret:
        return cls(**EndpointView.of(r).model_dump(), secret=r.secret)


class DeliveryView(View):
    id: str
    endpointId: str
    runId: str
    sequence: int
    eventType: str
    webhookId: str
    status: str
    attempts: int
    nextAttemptAt: datetime
    lastStatusCode: int | None = None
    lastError: str | None = None
    lastResponseBody: str | None = None
    createdAt: datetime
    deliveredAt: datetime | None = None

    @classmethod
    def of(cls, d: DeliveryRecord) -> DeliveryView:
        return cls(
            id=d.id,
            endpointId=d.endpoint_id,
            runId=d.run_id,
            sequence=d.sequence,
            eventType=d.event_type,
            webhookId=d.event_id,
            status=d.status,
            attempts=d.attempts,
            nextAttemptAt=d.next_attempt_at,
            lastStatusCode=d.last_status_code,
            lastError=d.last_error,
            lastResponseBody=d.last_response_body,
            createdAt=d.created_at,
            deliveredAt=d.delivered_at,
        )


class ReplayRequest(BaseModel):
    """``POST /api/admin/webhooks/deliveries/replay``: an endpoint's dead letters in a range."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpointId: str = Field(min_length=1, max_length=36, pattern=r"^[A-Za-z0-9_-]+$")
    since: datetime | None = None
    until: datetime | None = None

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class ReplayResult(View):
    replayed: int


class TestResult(View):
    """What the endpoint answered to a signed test request (nothing is stored)."""

    ok: bool
    statusCode: int | None = None
    error: str | None = None
    webhookId: str


# -- endpoints ------------------------------------------------------------------------------


def _check_url(guard: UrlGuard, url: str) -> None:
    guard.check_url(url, field_name="url")


def register(
    store: WebhookStore, actor: Actor, body: EndpointRegistration, guard: UrlGuard
) -> EndpointWithSecret:
    actor.require("admin", "register webhook endpoints")
    _check_url(guard, body.url)
    secret = check_secret(body.secret) if body.secret else new_secret()
    record = store.create_endpoint(
        organization=actor.organization,
        url=body.url,
        secret=secret,
        description=body.description,
        event_types=body.eventTypes,
        definitions=body.definitions,
        enabled=body.enabled,
        rate_limit=body.rateLimit,
    )
    return EndpointWithSecret.with_secret(record)


def list_endpoints(store: WebhookStore, actor: Actor) -> list[EndpointView]:
    return [EndpointView.of(r) for r in store.list_endpoints(actor.organization)]


def show(store: WebhookStore, actor: Actor, endpoint_id: str) -> EndpointView:
    return EndpointView.of(store.get_endpoint(endpoint_id, actor.organization))


def update(
    store: WebhookStore, actor: Actor, endpoint_id: str, body: EndpointChanges, guard: UrlGuard
) -> EndpointView:
    actor.require("admin", "change webhook endpoints")
    store.get_endpoint(endpoint_id, actor.organization)
    changes: dict[str, Any] = {}
    given = body.model_fields_set
    if body.url is not None:
        _check_url(guard, body.url)
        changes["url"] = body.url
    for field, column in (
        ("description", "description"),
        ("eventTypes", "event_types"),
        ("definitions", "definitions"),
        ("enabled", "enabled"),
        ("rateLimit", "rate_limit"),
    ):
        if field in given:
            value = getattr(body, field)
            if value is None and field in ("enabled", "eventTypes"):
                continue
            changes[column] = value
    return EndpointView.of(store.update_endpoint(endpoint_id, actor.organization, **changes))


def remove(store: WebhookStore, actor: Actor, endpoint_id: str) -> None:
    actor.require("admin", "remove webhook endpoints")
    store.delete_endpoint(endpoint_id, actor.organization)


def rotate(
    store: WebhookStore, actor: Actor, endpoint_id: str, overlap_seconds: float
) -> EndpointWithSecret:
    """A new secret; the old one keeps signing (beside it) for ``overlap_seconds``."""
    actor.require("admin", "rotate webhook secrets")
    record = store.rotate_secret(endpoint_id, actor.organization, new_secret(), overlap_seconds)
    return EndpointWithSecret.with_secret(record)


def endpoint_to_test(store: WebhookStore, actor: Actor, endpoint_id: str) -> EndpointRecord:
    """The endpoint a test event goes to (testing needs ``admin``)."""
    actor.require("admin", "test webhook endpoints")
    return store.get_endpoint(endpoint_id, actor.organization)


async def send_test(
    endpoint: EndpointRecord, guard: UrlGuard, settings: WebhookSettings
) -> TestResult:
    """Send a signed test event to ``endpoint`` now (nothing is stored) and say what it
    answered; its URL goes through ``guard`` at connect time."""
    from podium.domain.ids import new_id
    from podium.events.webhooks.client import WebhookClient  # httpx: only for a test
    from podium.events.webhooks.testing import build_test_body

    message_id = new_id()
    client = WebhookClient(guard, timeout=settings.timeout_seconds)
    try:
        answer = await client.send(
            endpoint.url,
            (endpoint.secret,),
            message_id,
            build_test_body(message_id, endpoint, settings.public_url),
        )
    finally:
        await client.aclose()
    return TestResult(
        ok=answer.ok, statusCode=answer.status_code, error=answer.error, webhookId=message_id
    )


# -- deliveries -----------------------------------------------------------------------------


def list_deliveries(store: WebhookStore, actor: Actor, **filters: Any) -> list[DeliveryView]:
    return [DeliveryView.of(d) for d in store.list_deliveries(actor.organization, **filters)]


def replay(store: WebhookStore, actor: Actor, delivery_id: str) -> DeliveryView:
    actor.require("admin", "replay webhook deliveries")
    return DeliveryView.of(store.replay(delivery_id, actor.organization))


def replay_dead(store: WebhookStore, actor: Actor, body: ReplayRequest) -> ReplayResult:
    actor.require("admin", "replay webhook deliveries")
    store.get_endpoint(body.endpointId, actor.organization)
    count = store.replay_dead(
        actor.organization, endpoint_id=body.endpointId, since=body.since, until=body.until
    )
    return ReplayResult(replayed=count)


# -- stream tickets -------------------------------------------------------------------------


def new_ticket() -> str:
    return TICKET_PREFIX + random_secrets.token_urlsafe(32)
