"""``GET /metrics``: Prometheus text format (spec section 12). Public like ``/healthz``:
label values are definition, step and agent names, statuses and outcomes, nothing else.

The state gauges are read from this app's database at scrape time (see
:mod:`podium.metrics`); counters are this process's (its embedded worker's) work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fastapi import APIRouter, Request
from starlette.responses import Response

from podium import metrics
from podium.storage.store import SqlStore

router = APIRouter(tags=["operations"])


def renderer(store: Callable[[], SqlStore]) -> Callable[[], bytes]:
    """Render this process's metrics with the state gauges of ``store()``'s database."""
    return metrics.exposition(lambda: store().state_counts())


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
async def scrape(request: Request) -> Response:
    render: Callable[[], bytes] | None = getattr(request.app.state, "metrics_render", None)
    if render is None:
        render = renderer(lambda: request.app.state.store)
        request.app.state.metrics_render = render
    body = await asyncio.to_thread(render)
    return Response(content=body, media_type=metrics.CONTENT_TYPE)
