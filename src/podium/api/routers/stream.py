"""Live progress of a run (spec section 10): Server-Sent Events and a WebSocket.

Both follow the run's event log in the database (:class:`~podium.events.EventFollower`), so a
client may resume from any sequence on any API instance, and end with one ``complete`` or
``error`` message once the run is terminal. Another organization's run, or an unknown one, is
a 404 (SSE) or a close with code 1008 (WebSocket), as for every other route.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Annotated

import anyio
import anyio.to_thread
from fastapi import APIRouter, Header, Query, Request, WebSocket
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.datastructures import State
from starlette.websockets import WebSocketDisconnect

from podium.api.deps import ActorDep, StoreDep
from podium.api.openapi import errors
from podium.api.schemas import MAX_SEQUENCE, RunId
from podium.errors import InvalidInput, Issue, PodiumError, StorageUnavailable, Unauthorized
from podium.events import EventFollower, Item, Keepalive, StreamEnd, StreamEndView, WakeHub
from podium.service.actors import Actor
from podium.service.views import EventView
from podium.settings import Settings
from podium.storage.store import SqlStore

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/orchestrations", tags=["runs"])

# A keepalive is due after this share of PODIUM_KEEPALIVE_SECONDS of silence, so that one
# arrives within the setting even after scheduling and network delays.
KEEPALIVE_SHARE = 0.8
# A client that cannot take one message in this long is gone: drop it (it may resume).
SEND_TIMEOUT_SECONDS = 30.0

WS_NORMAL = 1000
WS_POLICY_VIOLATION = 1008
WS_TRY_AGAIN_LATER = 1013

After = Annotated[
    int,
    Query(
        ge=0, le=MAX_SEQUENCE, description="Resume after this sequence (default: from the start)."
    ),
]


class EventStreamResponse(EventSourceResponse):
    """``text/event-stream``, also in the OpenAPI document."""

    media_type = "text/event-stream"


def event_hub(state: State) -> WakeHub:
    """The application's wake-up hub, made on first use."""
    hub: WakeHub | None = getattr(state, "event_hub", None)
    if hub is None:
        hub = state.event_hub = WakeHub(state.store)
    return hub


def follower(state: State, run_id: str, after: int) -> EventFollower:
    """A follower of ``run_id`` after ``after`` with this application's settings. Other
    processes wake PostgreSQL followers (NOTIFY) but not SQLite ones, which therefore look
    again every ``poll_seconds``."""
    settings: Settings = state.settings
    store: SqlStore = state.store
    return EventFollower(
        store,
        event_hub(state),
        run_id,
        after=after,
        keepalive=settings.keepalive_seconds * KEEPALIVE_SHARE,
        recheck=settings.poll_seconds if store.is_sqlite else settings.keepalive_seconds,
    )


def resume_point(after: int, last_event_id: str | None) -> int:
    """Where a stream starts: ``Last-Event-ID`` (a reconnecting browser sends it) wins over
    ``?after=``."""
    if last_event_id is None or not last_event_id.strip():
        return after
    value = last_event_id.strip()
    if not (value.isascii() and value.isdigit()) or int(value) > MAX_SEQUENCE:
        raise InvalidInput(
            "the request is invalid",
            [Issue("header.Last-Event-ID", "must be the sequence number of an event")],
        )
    return int(value)


async def scoped_run_id(store: SqlStore, actor: Actor, run_id: str) -> str:
    """The full id of the actor's run ``run_id`` (an id or a unique prefix); NotFound for
    another organization's or an unknown run."""
    # only the id: loading the steps (every input and output) per stream start would cost
    # each client the run's whole size in memory (T2)
    return await anyio.to_thread.run_sync(store.find_run_id, run_id, actor.organization)


def sse_message(item: Item) -> ServerSentEvent:
    if isinstance(item, StreamEnd):
        end = StreamEndView.of(item)
        return ServerSentEvent(data=end.model_dump_json(), event=end.type)
    if isinstance(item, Keepalive):
        return ServerSentEvent(comment="keepalive")
    view = EventView.of(item)
    return ServerSentEvent(data=view.model_dump_json(), event=view.type, id=str(view.sequence))


async def sse_messages(source: EventFollower) -> AsyncIterator[ServerSentEvent]:
    """The follower's items as SSE messages. If the database goes away the stream just
    ends: EventSource clients reconnect by themselves and resume with Last-Event-ID."""
    try:
        async with aclosing(source.items()) as items:
            async for item in items:
                yield sse_message(item)
    except StorageUnavailable as exc:
        log.warning("stream of run %s ended: %s", source.run_id, exc.message)


@router.get(
    "/{runId}/stream",
    response_class=EventStreamResponse,
    summary="Live events (Server-Sent Events)",
    responses={
        200: {
            "description": "Each event as `id: <sequence>`, `event: <type>`, `data: <event "
            "JSON>`; a `: keepalive` comment while idle; a final `complete` or `error` event "
            "when the run has ended, after which the stream closes."
        },
        **errors(404, 422, 503),
    },
)
async def stream(
    run_id: RunId,
    request: Request,
    store: StoreDep,
    actor: ActorDep,
    after: After = 0,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=20,
            description="Sent by a reconnecting EventSource; takes precedence over `after`.",
        ),
    ] = None,
) -> EventSourceResponse:
    """The run's events after `after` (or `Last-Event-ID`), then new ones as they happen,
    until the run ends. Browsers should `close()` the EventSource on `complete` or `error`,
    or it reconnects (and gets the final event again)."""
    start = resume_point(after, last_event_id)
    full_id = await scoped_run_id(store, actor, run_id)
    return EventStreamResponse(
        sse_messages(follower(request.app.state, full_id, start)),
        ping=0,  # the follower sends keepalives when idle, not on a fixed clock
        send_timeout=SEND_TIMEOUT_SECONDS,
    )


def websocket_actor(websocket: WebSocket) -> Actor:
    """The actor that :class:`~podium.api.auth.AccessGate` attached to the handshake."""
    actor: Actor | None = getattr(websocket.state, "actor", None)
    if actor is None:
        raise Unauthorized("an API key is required: send 'Authorization: Bearer <key>'")
    return actor


@router.websocket("/{runId}/ws")
async def websocket_stream(websocket: WebSocket, run_id: RunId, after: After = 0) -> None:
    """The same stream as SSE over a WebSocket: each event as a JSON text message, then the
    final ``complete`` or ``error`` message, then a normal close (1000). Messages from the
    client are ignored."""
    state = websocket.app.state
    try:
        full_id = await scoped_run_id(state.store, websocket_actor(websocket), run_id)
    except PodiumError as exc:
        if exc.status >= 500:
            raise
        # refuse the handshake as ProblemGuard does for errors before a WebSocket is accepted
        # (the exception handlers would answer with an HTTP response instead)
        await websocket.close(code=WS_POLICY_VIOLATION, reason=exc.message[:120])
        return
    await websocket.accept()
    gone = False

    async def watch_disconnect(scope: anyio.CancelScope) -> None:
        nonlocal gone
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass
        gone = True
        scope.cancel()

    code, reason = WS_NORMAL, ""
    async with anyio.create_task_group() as group:
        group.start_soon(watch_disconnect, group.cancel_scope)
        try:
            await send_items(websocket, follower(state, full_id, after))
        except WebSocketDisconnect:
            gone = True
        except StorageUnavailable as exc:
            log.warning("WebSocket stream of run %s ended: %s", full_id, exc.message)
            code, reason = WS_TRY_AGAIN_LATER, "storage unavailable: resume with ?after="
        group.cancel_scope.cancel()
    if not gone:
        await websocket.close(code=code, reason=reason)


async def send_items(websocket: WebSocket, source: EventFollower) -> None:
    async with aclosing(source.items()) as items:
        async for item in items:
            if isinstance(item, StreamEnd):
                await websocket.send_text(StreamEndView.of(item).model_dump_json())
            elif not isinstance(item, Keepalive):  # the server pings WebSockets itself
                await websocket.send_text(EventView.of(item).model_dump_json())
