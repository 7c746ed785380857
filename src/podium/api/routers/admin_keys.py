"""Routes: API keys (``/api/admin/keys``), for the ``admin`` role. An admin key manages its
own organization's keys; in development mode (loopback, no keys) the caller is the local
operator and manages every organization's, as ``podium keys`` does on the database.

A key is in the answer to its creation only; the database keeps its hash. Revoking takes
effect with the key's next request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from podium.api.deps import ActorDep, StoreDep
from podium.api.openapi import errors
from podium.api.query import strict_query
from podium.api.schemas import ORGANIZATION_PATTERN, KeyBody
from podium.service import keys as service
from podium.service.views import ApiKeyView, CreatedApiKey, Page

router = APIRouter(prefix="/api/admin", tags=["keys"], dependencies=[Depends(strict_query)])

KeyId = Annotated[
    str,
    Path(
        alias="keyId",
        min_length=1,
        max_length=64,
        pattern=r"^[0-9A-Za-z]+$",
        description="The key's id: the part between `pod_` and the next `_`.",
    ),
]


@router.get(
    "/keys", response_model=Page[ApiKeyView], summary="List API keys", responses=errors(403, 503)
)
def list_keys(
    store: StoreDep,
    actor: ActorDep,
    organization: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=100,
            pattern=ORGANIZATION_PATTERN,
            description="Only this organization's keys (an admin key sees its own only).",
        ),
    ] = None,
) -> Page[ApiKeyView]:
    """Keys, never their secret, oldest first."""
    return Page[ApiKeyView](items=service.list_keys(store, actor, organization))


@router.post(
    "/keys",
    status_code=201,
    response_model=CreatedApiKey,
    summary="Create an API key",
    responses=errors(403, 422, 503),
)
def create_key(body: KeyBody, store: StoreDep, actor: ActorDep) -> CreatedApiKey:
    """Create a key; the answer holds it (``key``), the only time it is shown."""
    return service.create(
        store, actor, organization=body.organization, role=body.role, name=body.name
    )


@router.post(
    "/keys/{keyId}/revoke",
    response_model=ApiKeyView,
    summary="Revoke an API key",
    responses=errors(403, 404, 422, 503),
)
def revoke_key(key_id: KeyId, store: StoreDep, actor: ActorDep) -> ApiKeyView:
    """Revoke a key: its next request gets 401. Revoking a revoked key changes nothing."""
    return service.revoke(store, actor, key_id)
