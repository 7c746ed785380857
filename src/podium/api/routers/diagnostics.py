"""Route: ``GET /api/admin/diagnostics``, the findings of ``podium doctor`` (spec section 16).

Read-only, any role; scoped to the caller's organization (a ``global`` admin sees all).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from podium.api.deps import ActorDep, SettingsDep, StoreDep
from podium.api.openapi import errors
from podium.doctor.views import DiagnosticsView
from podium.service import diagnostics as service

router = APIRouter(prefix="/api/admin", tags=["diagnostics"])


@router.get(
    "/diagnostics",
    response_model=DiagnosticsView,
    summary="Diagnose: the runbook's checks",
    responses=errors(404, 422, 503),
)
def get_diagnostics(
    store: StoreDep,
    actor: ActorDep,
    settings: SettingsDep,
    only: Annotated[
        list[str] | None,
        Query(max_length=100, description="Check ids (or groups, e.g. `stuck`) to run."),
    ] = None,
    run: Annotated[
        str | None, Query(max_length=36, description="Look at this run only (id or prefix).")
    ] = None,
    stalled_after: Annotated[
        float,
        Query(
            alias="stalledAfter",
            gt=0,
            le=30 * 86400,
            description="Seconds without an event after which an active run is stalled.",
        ),
    ] = service.DEFAULT_STALLED_AFTER,
) -> DiagnosticsView:
    """The same findings as `podium doctor --json`: check, runbook section, severity,
    summary, evidence and the fix (command and API call)."""
    report = service.diagnostics(
        store, actor, settings, only=only, run_id=run, stalled_after=stalled_after
    )
    return DiagnosticsView.of(report)
