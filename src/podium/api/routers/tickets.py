"""Route: stream tickets (``POST /api/stream-tickets``) for browsers, which cannot send an
``Authorization`` header on a WebSocket or an EventSource.

A ticket is valid for 60 seconds, once, for one run's ``/stream`` or ``/ws``, and speaks for
the key that asked for it (same organization and role). Send it as ``?ticket=``;
:class:`~podium.api.auth.AccessGate` redeems it and removes it from the query string before
anything (the access log included) sees the request. Only its hash is stored.
"""

from __future__ import annotations

from datetime import datetime

import anyio.to_thread
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from podium.api.deps import ActorDep, StoreDep
from podium.api.openapi import errors
from podium.service import runs
from podium.service import webhooks as service
from podium.service.views import View

router = APIRouter(prefix="/api", tags=["runs"])


class TicketRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    runId: str = Field(min_length=1, max_length=64, description="The run to follow.")


class TicketView(View):
    ticket: str
    runId: str
    expiresAt: datetime


@router.post(
    "/stream-tickets",
    status_code=201,
    response_model=TicketView,
    summary="A single-use ticket for one run's stream (browsers: ?ticket=)",
    responses=errors(404, 422, 503),
)
async def create_ticket(body: TicketRequest, store: StoreDep, actor: ActorDep) -> TicketView:
    status = await anyio.to_thread.run_sync(runs.status, store, actor, body.runId)
    ticket = service.new_ticket()
    expires = await anyio.to_thread.run_sync(
        lambda: store.webhooks.create_ticket(
            ticket,
            organization=actor.organization,
            role=actor.role,
            actor_name=actor.name,
            key_id=actor.key_id,
            run_id=status.runId,
            ttl_seconds=service.TICKET_SECONDS,
        )
    )
    return TicketView(ticket=ticket, runId=status.runId, expiresAt=expires)
