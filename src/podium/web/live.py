"""Live pages without a stream of their own: a long poll that answers when runs move.

A run page follows its run's SSE stream while the run lives; that stream ends with the run,
but a failed run may move again (an operator retries it from anywhere), and the runs list
shows many runs at once. Both ask :func:`runs_moved`, which waits for the store's wake-ups,
so a change reaches the page as soon as it commits instead of at the next tick of a poll.
"""

from __future__ import annotations

import asyncio
import contextlib

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from podium.api.routers.stream import event_hub
from podium.events.hub import Subscription
from podium.service.actors import Actor
from podium.settings import Settings
from podium.storage.store import SqlStore

# How long a page waits for its runs to move before asking again: well within the idle
# timeouts of proxies (60 s is common); and how many runs it may wait on: a page of the
# runs list.
MOVED_WAIT_SECONDS = 20.0
MOVED_RUNS = 50

router = APIRouter(include_in_schema=False)


@router.get("/runs/moved")
async def runs_moved(request: Request) -> Response:
    """For pages of runs that may still change (a run page, the runs list): answers as soon
    as one of the runs ``?run=`` (repeated, at most :data:`MOVED_RUNS`) has an event past
    ``?after=``, or after :data:`MOVED_WAIT_SECONDS` whatever happened, with
    ``{"position": N}``: the sum of the runs' last event sequences, which grows with every
    event of any of them (the page passes it back as ``after``; for one run it is the run's
    last sequence). Without ``after`` it answers at once. Runs of other organizations are
    left out; when none is left, 404. Without a session (keys required): 401.

    It waits on the store's wake-ups, so a commit of this process or (PostgreSQL) of any
    other shows at once; SQLite written by another process is looked at every
    ``PODIUM_POLL_SECONDS``, as the runs' streams do."""
    actor: Actor | None = getattr(request.state, "actor", None)
    if actor is None:
        return JSONResponse({"detail": "sign in first"}, 401)
    run_ids = list(dict.fromkeys(request.query_params.getlist("run")))
    after_text = request.query_params.get("after")
    if not 0 < len(run_ids) <= MOVED_RUNS or any(len(r) > 64 for r in run_ids):
        return JSONResponse({"detail": f"give 1 to {MOVED_RUNS} run ids as run="}, 422)
    if after_text is not None and not (after_text.isascii() and after_text.isdigit()):
        return JSONResponse({"detail": "after must be a position this page was given"}, 422)
    store: SqlStore = request.app.state.store
    settings: Settings = request.app.state.settings
    recheck = settings.poll_seconds if store.is_sqlite else settings.keepalive_seconds
    hub = event_hub(request.app.state)
    deadline = anyio.current_time() + (MOVED_WAIT_SECONDS if after_text is not None else 0)
    with contextlib.ExitStack() as stack:
        # subscribed before the first read: a commit between a read and the wait still wakes
        wakes = [stack.enter_context(hub.subscribe(run_id)) for run_id in run_ids]
        while True:
            found = await anyio.to_thread.run_sync(
                store.last_sequences, run_ids, actor.organization
            )
            if not found:
                return JSONResponse({"detail": "no such run"}, 404)
            position = sum(found.values())
            left = deadline - anyio.current_time()
            if after_text is None or position > int(after_text) or left <= 0:
                break
            await any_woken(wakes, min(left, recheck))
    return JSONResponse({"position": position}, headers={"Cache-Control": "no-store"})


async def any_woken(wakes: list[Subscription], seconds: float) -> None:
    """Until one of ``wakes`` is woken, or ``seconds`` have passed."""
    waits = [asyncio.ensure_future(w.wait(seconds)) for w in wakes]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
