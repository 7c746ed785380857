"""Routes: webhook endpoints and their deliveries (``/api/admin/webhooks``). Any role reads;
changes, tests and replays need ``admin``. The URL guard and the webhook settings come from
``app.state.webhook_guard`` / ``app.state.webhook_settings`` when set (tests), else from the
environment (``PODIUM_WEBHOOK_URL_ALLOWLIST``, ``PODIUM_WEBHOOK_*``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from podium.api.deps import ActorDep, StoreDep
from podium.api.openapi import errors
from podium.api.schemas import IsoDatetime
from podium.domain.webhooks import DeliveryStatus
from podium.events.webhooks.config import WebhookSettings
from podium.net.urlguard import UrlGuard
from podium.service import webhooks as service
from podium.service.views import Page
from podium.service.webhooks import (
    DeliveryView,
    EndpointChanges,
    EndpointRegistration,
    EndpointView,
    EndpointWithSecret,
    ReplayRequest,
    ReplayResult,
    TestResult,
)
from podium.storage.store import SqlStore
from podium.storage.webhooks import WebhookStore

router = APIRouter(prefix="/api/admin/webhooks", tags=["webhooks"])


def get_webhooks(store: StoreDep) -> WebhookStore:
    return store.webhooks


def get_guard(request: Request) -> UrlGuard:
    guard: UrlGuard | None = getattr(request.app.state, "webhook_guard", None)
    if guard is None:
        guard = request.app.state.webhook_guard = UrlGuard.from_env(subject="WEBHOOK")
    return guard


def get_webhook_settings(request: Request) -> WebhookSettings:
    settings: WebhookSettings | None = getattr(request.app.state, "webhook_settings", None)
    if settings is None:
        settings = request.app.state.webhook_settings = WebhookSettings.from_env()
    return settings


WebhooksDep = Annotated[WebhookStore, Depends(get_webhooks)]
GuardDep = Annotated[UrlGuard, Depends(get_guard)]
WebhookSettingsDep = Annotated[WebhookSettings, Depends(get_webhook_settings)]
EndpointId = Annotated[
    str,
    Path(
        alias="endpointId",
        min_length=1,
        max_length=36,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Endpoint id.",
    ),
]
DeliveryId = Annotated[
    str,
    Path(
        alias="deliveryId",
        min_length=1,
        max_length=36,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Delivery id.",
    ),
]


@router.get(
    "", response_model=Page[EndpointView], summary="List webhook endpoints", responses=errors(503)
)
def list_endpoints(webhooks: WebhooksDep, actor: ActorDep) -> Page[EndpointView]:
    return Page[EndpointView](items=service.list_endpoints(webhooks, actor))


@router.post(
    "",
    status_code=201,
    response_model=EndpointWithSecret,
    summary="Register a webhook endpoint (the secret is shown once)",
    responses=errors(403, 409, 422, 503),
)
def register_endpoint(
    body: EndpointRegistration, webhooks: WebhooksDep, actor: ActorDep, guard: GuardDep
) -> EndpointWithSecret:
    return service.register(webhooks, actor, body, guard)


@router.get(
    "/deliveries",
    response_model=Page[DeliveryView],
    summary="List webhook deliveries (dead letters: status=dead)",
    responses=errors(422, 503),
)
def list_deliveries(
    webhooks: WebhooksDep,
    actor: ActorDep,
    endpoint: Annotated[
        str | None, Query(max_length=36, pattern=r"^[A-Za-z0-9_-]+$", description="Endpoint id.")
    ] = None,
    run: Annotated[
        str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="Run id.")
    ] = None,
    status: Annotated[DeliveryStatus | None, Query(description="Delivery status.")] = None,
    since: Annotated[IsoDatetime | None, Query(description="Written at or after.")] = None,
    until: Annotated[IsoDatetime | None, Query(description="Written before.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[DeliveryView]:
    items = service.list_deliveries(
        webhooks,
        actor,
        endpoint_id=endpoint,
        run_id=run,
        status=None if status is None else status.value,
        since=since,
        until=until,
        limit=limit,
    )
    return Page[DeliveryView](items=items)


@router.post(
    "/deliveries/replay",
    response_model=ReplayResult,
    summary="Replay an endpoint's dead letters written in a time range",
    responses=errors(403, 404, 422, 503),
)
def replay_dead(body: ReplayRequest, webhooks: WebhooksDep, actor: ActorDep) -> ReplayResult:
    return service.replay_dead(webhooks, actor, body)


@router.post(
    "/deliveries/{deliveryId}/replay",
    response_model=DeliveryView,
    summary="Replay one delivery (same webhook-id, signed afresh)",
    responses=errors(403, 404, 409, 503),
)
def replay_delivery(
    delivery_id: DeliveryId, webhooks: WebhooksDep, actor: ActorDep
) -> DeliveryView:
    return service.replay(webhooks, actor, delivery_id)


@router.get(
    "/{endpointId}",
    response_model=EndpointView,
    summary="Show a webhook endpoint",
    responses=errors(404, 503),
)
def show_endpoint(endpoint_id: EndpointId, webhooks: WebhooksDep, actor: ActorDep) -> EndpointView:
    return service.show(webhooks, actor, endpoint_id)


@router.patch(
    "/{endpointId}",
    response_model=EndpointView,
    summary="Change a webhook endpoint",
    responses=errors(403, 404, 422, 503),
)
def update_endpoint(
    endpoint_id: EndpointId,
    body: EndpointChanges,
    webhooks: WebhooksDep,
    actor: ActorDep,
    guard: GuardDep,
) -> EndpointView:
    return service.update(webhooks, actor, endpoint_id, body, guard)


@router.delete(
    "/{endpointId}",
    status_code=204,
    response_class=Response,
    summary="Remove a webhook endpoint and its deliveries",
    responses=errors(403, 404, 503),
)
def remove_endpoint(endpoint_id: EndpointId, webhooks: WebhooksDep, actor: ActorDep) -> Response:
    service.remove(webhooks, actor, endpoint_id)
    return Response(status_code=204)


@router.post(
    "/{endpointId}/rotate-secret",
    response_model=EndpointWithSecret,
    summary="Rotate the secret (the old one keeps signing during the overlap)",
    responses=errors(403, 404, 503),
)
def rotate_secret(
    endpoint_id: EndpointId,
    webhooks: WebhooksDep,
    actor: ActorDep,
    settings: WebhookSettingsDep,
) -> EndpointWithSecret:
    return service.rotate(webhooks, actor, endpoint_id, settings.rotation_overlap_seconds)


@router.post(
    "/{endpointId}/test",
    response_model=TestResult,
    summary="Send a signed test event to the endpoint now",
    responses=errors(403, 404, 503),
)
async def test_endpoint(
    endpoint_id: EndpointId,
    request: Request,
    actor: ActorDep,
    guard: GuardDep,
    settings: WebhookSettingsDep,
) -> TestResult:
    import anyio.to_thread

    store: SqlStore = request.app.state.store
    endpoint = await anyio.to_thread.run_sync(
        service.endpoint_to_test, store.webhooks, actor, endpoint_id
    )
    return await service.send_test(endpoint, guard, settings)
