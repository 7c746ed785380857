"""Operations probes: ``/healthz`` (the process is alive) and ``/readyz`` (it can serve).

Both are public (no key), so their answers say nothing about the database's location.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter
from starlette.responses import Response

from podium.api.deps import StoreDep
from podium.api.errors import problem_response
from podium.api.openapi import errors
from podium.api.schemas import Health, Readiness
from podium.storage import migrate

log = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz() -> Health:
    """200 while the process runs; touches nothing else."""
    return Health()


@router.get("/readyz", response_model=Readiness, summary="Readiness", responses=errors(503))
def readyz(store: StoreDep) -> Readiness | Response:
    """200 when the database answers and its schema is at the revision this Podium needs;
    a 503 problem otherwise (run ``podium migrate`` when the schema is behind)."""
    try:
        current, head = migrate.current_revision(store.db), migrate.head_revision(store.db)
    except Exception as exc:
        log.warning("readiness check: database unreachable: %s", exc)
        return _not_ready("the database is unreachable")
    if current != head:
        return _not_ready(
            f"the database schema is at {current or 'no revision'}, not {head}: "
            "run `podium migrate`"
        )
    return Readiness(revision=current)


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
