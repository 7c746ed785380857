"""Operations probes: ``/healthz`` (the process is alive) and ``/readyz`` (it can serve).

Both are public (no key), so their answers say nothing about the database's location.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter
from starlette.responses import Response

from podium.api.deps import SettingsDep, StoreDep
from podium.api.errors import problem_response
from podium.api.openapi import errors
from podium.api.schemas import Health, Readiness

log = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz() -> Health:
    """200 while the process runs; touches nothing else."""
    return Health()


@router.get("/readyz", response_model=Readiness, summary="Readiness", responses=errors(503))
def readyz(store: StoreDep, settings: SettingsDep) -> Readiness | Response:
    """200 when the database answers and its schema is at the revision this Podium needs,
    with the number of live workers (a server without workers is still ready: workers may
    run elsewhere); a 503 problem otherwise (run ``podium migrate`` when the schema is
    behind)."""
    try:
        schema = store.schema_status()
        if not schema.up_to_date:
            return _not_ready(
                f"the database schema is at {schema.current or 'no revision'}, "
                f"not {schema.head}: run `podium migrate`"
            )
        workers = len(store.live_workers(silent_for=settings.lease_seconds))
    except Exception as exc:
        log.warning("readiness check: database unreachable: %s", exc)
        return _not_ready("the database is unreachable")
    return Readiness(revision=schema.current, workers=workers)


def _not_ready(detail: str) -> Response:
    # a load balancer or client may come back after this long (the database may be
    # restarting, D6)
    return problem_response(
        503,
        title="Not ready",
        code="not_ready",
        detail=detail,
        instance="/readyz",
        headers={"Retry-After": "2"},
    )
