"""``podium doctor`` as a service function: the findings an actor may see.

An actor sees the findings about its organization's objects; a ``global`` admin sees every
organization's and those about Podium itself (schema, SQLite, workers, keys, settings).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from podium.doctor.model import Options
from podium.doctor.runner import Report, diagnose
from podium.service.actors import Actor
from podium.settings import Settings, environment
from podium.storage.store import SqlStore

GLOBAL = "global"
DEFAULT_STALLED_AFTER = 300.0


def options_for(
    settings: Settings,
    *,
    organization: str | None,
    run_id: str | None = None,
    stalled_after: float = DEFAULT_STALLED_AFTER,
    environ: Mapping[str, str] | None = None,
) -> Options:
    return Options(
        settings=settings,
        now=datetime.now(UTC),
        organization=organization,
        run_id=run_id,
        stalled_after=stalled_after,
        environ=dict(environment() if environ is None else environ),
    )


def scope_of(actor: Actor) -> str | None:
    """The organization whose findings ``actor`` sees; None: all (a ``global`` admin)."""
    if actor.organization == GLOBAL and actor.role == "admin":
        return None
    return actor.organization


def diagnostics(
    store: SqlStore,
    actor: Actor,
    settings: Settings,
    *,
    only: Sequence[str] | None = None,
    run_id: str | None = None,
    stalled_after: float = DEFAULT_STALLED_AFTER,
) -> Report:
    """Run the doctor's checks within ``actor``'s scope (read-only). A ``run_id`` of
    another organization finds nothing, like one that does not exist."""
    if run_id is not None:
        run_id = store.find_run_id(run_id, scope_of(actor))
    options = options_for(
        settings, organization=scope_of(actor), run_id=run_id, stalled_after=stalled_after
    )
    return diagnose(store, options, only)
