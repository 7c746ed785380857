"""Where a command's runs and definitions live: the local database or a Podium server.

:class:`Backend` is the port; :class:`~podium.client.local.LocalBackend` calls the service
functions on the local database with the local actor, and
:class:`~podium.client.remote.RemoteBackend` calls the HTTP API that wraps the same functions.
Both return the same views and raise the same :class:`~podium.errors.PodiumError` subclasses,
so every command prints the same thing in both modes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from podium.errors import NotFound

# The port names the views only in annotations, by their modules: importing them (pydantic,
# and the doctor's checks behind DiagnosticsView) is left to the implementations, so that a
# command pays for what it uses.
if TYPE_CHECKING:
    from podium.agents.registry.admission import AgentRegistration
    from podium.doctor import views as doctor_views
    from podium.domain.definition import Definition
    from podium.service import agent_views, approvals, cache, views, webhooks


@dataclass(frozen=True)
class RunFilter:
    """The filters of ``GET /api/orchestrations`` (and ``podium runs list``)."""

    status: list[str] = field(default_factory=list)
    lifecycle: str = "all"
    definition: str | None = None
    search: str | None = None
    cursor: str | None = None
    limit: int = 20


@dataclass(frozen=True)
class Recovery:
    """The body of a recovery action (spec section 8), in the API's terms."""

    step_record_id: str | None = None
    note: str | None = None
    delay_seconds: float = 0.0
    modifications: dict[str, Any] | None = None
    replacement_output: Any = None
    force: bool = False
    resume_child: bool = False


@dataclass(frozen=True)
class ApprovalFilter:
    """The filters of ``GET /api/orchestrations/approvals`` (and ``podium approvals list``);
    no ``status``: the pending ones."""

    status: list[str] = field(default_factory=list)
    run_id: str | None = None
    definition: str | None = None
    kind: str | None = None
    cursor: str | None = None
    limit: int = 20


@dataclass(frozen=True)
class Decision:
    """The decision on an approval (spec section 5): ``continue``, ``retry`` (with
    ``modifications``), ``abort``, or ``respond`` (with ``response`` ``{text?, data?}``)."""

    decision: str
    note: str | None = None
    modifications: dict[str, Any] | None = None
    response: dict[str, Any] | None = None


@dataclass(frozen=True)
class CacheSelection:
    """Step cache entries matching every filter given (``/api/admin/cache``); ``expired``:
    only those past their ``expiresAt``."""

    definition: str | None = None
    step: str | None = None
    fingerprint: str | None = None
    older_than_seconds: float | None = None
    expired: bool = False


@dataclass(frozen=True)
class DeliveryFilter:
    """The filters of ``GET /api/admin/webhooks/deliveries``; ``status`` ``dead``: the dead
    letters."""

    endpoint_id: str | None = None
    status: str | None = None
    since: datetime | None = None
    limit: int = 100


class Backend(Protocol):
    """Runs, definitions, approvals, agents, keys, the step cache and webhooks of one
    organization (the local operator's, or the API key's), wherever they are kept."""

    @property
    def where(self) -> str:
        """The database (without password) or the server URL, for messages."""
        ...

    # -- runs
    def launch(
        self, definition: str, version: str | None, parameters: dict[str, Any]
    ) -> views.RunSummary: ...

    def list_runs(self, filters: RunFilter) -> views.Page[views.RunSummary]: ...

    def detail(self, run_id: str) -> views.RunDetail: ...

    def step(self, run_id: str, step_record_id: str) -> views.StepDetail: ...

    def tree(self, run_id: str) -> list[views.RunTreeNode]:
        """The run and its descendants, depth-first (issue 11)."""
        ...

    def events(self, run_id: str, after: int = 0) -> list[views.EventView]:
        """Every event of the run after ``after`` (all pages)."""
        ...

    def follow_events(self, run_id: str, after: int = 0) -> AsyncIterator[views.EventView]:
        """The run's events after ``after`` as they happen, ending once the run is in a
        terminal status and every event up to it was given."""
        ...

    def definition_of(self, run: views.RunView) -> Definition | None:
        """The run's definition (for retry limits), or None when it cannot be read."""
        ...

    # -- recovery
    def retry(self, run_id: str, action: Recovery) -> views.ActionView: ...

    def skip(self, run_id: str, action: Recovery) -> views.ActionView: ...

    def abort(self, run_id: str, action: Recovery) -> views.ActionView: ...

    # -- definitions
    def validate(self, source: bytes) -> views.ValidationView: ...

    def push(self, source: bytes, *, activate: bool) -> tuple[views.DefinitionView, bool]: ...

    def list_definitions(self) -> list[views.DefinitionSummary]: ...

    def show_definition(self, name: str, version: str | None) -> views.DefinitionView: ...

    def set_definition_status(
        self, name: str, version: str, status: str
    ) -> views.DefinitionView: ...

    # -- the agent registry (podium agents)
    def list_agents(self) -> list[agent_views.AgentView]:
        """The agents a run of the organization can use: its own, global's, built-in."""
        ...

    def show_agent(self, slug: str) -> agent_views.AgentDetail: ...

    def register_agent(self, registration: AgentRegistration) -> agent_views.AgentDetail:
        """Register an agent; an A2A agent's card is fetched now, its URL checked by the
        guard of the side that fetches it (the local process or the server)."""
        ...

    def update_agent(
        self, slug: str, changes: agent_views.AgentChanges
    ) -> agent_views.AgentDetail: ...

    def refresh_agent(self, slug: str) -> agent_views.AgentDetail:
        """Fetch an A2A agent's card again."""
        ...

    # -- API keys (podium keys)
    def create_key(
        self, organization: str | None, role: str, name: str | None
    ) -> views.CreatedApiKey:
        """A new key (shown in the answer only); ``organization`` None: the caller's."""
        ...

    def list_keys(self, organization: str | None) -> list[views.ApiKeyView]:
        """Keys of ``organization``, oldest first; None: of every organization the caller
        manages (all of them on the local database, the key's own on a server)."""
        ...

    def revoke_key(self, key_id: str) -> views.ApiKeyView: ...

    # -- diagnostics (podium doctor)
    def diagnostics(
        self, only: list[str], run_id: str | None, stalled_after: float
    ) -> doctor_views.DiagnosticsView:
        """The doctor's findings (read-only): every organization's on the local database,
        the API key's scope on a server."""
        ...

    # -- approvals (podium approvals)
    def list_approvals(self, filters: ApprovalFilter) -> views.Page[approvals.ApprovalView]:
        """Newest first, one page; pass ``nextCursor`` back as ``cursor``."""
        ...

    def show_approval(self, approval_id: str) -> approvals.ApprovalView: ...

    def decide_approval(self, approval_id: str, decision: Decision) -> approvals.DecisionView:
        """Decide a pending approval, recorded with the actor; Conflict when it was decided
        already."""
        ...

    # -- the step cache (podium cache)
    def cache_stats(self) -> cache.CacheStats: ...

    def list_cache(self, selection: CacheSelection, limit: int) -> list[cache.CacheEntryView]:
        """Most recently stored first."""
        ...

    def clear_cache(self, selection: CacheSelection, *, everything: bool) -> int:
        """Delete the selected entries (without a filter only with ``everything``); how
        many were deleted."""
        ...

    # -- webhooks (podium webhooks)
    def list_webhooks(self) -> list[webhooks.EndpointView]: ...

    def register_webhook(
        self, registration: webhooks.EndpointRegistration
    ) -> webhooks.EndpointWithSecret:
        """Register an endpoint, its URL checked by the guard of the side that stores it;
        the answer is the only one that shows its secret."""
        ...

    def show_webhook(self, endpoint_id: str) -> webhooks.EndpointView: ...

    def update_webhook(
        self, endpoint_id: str, changes: webhooks.EndpointChanges
    ) -> webhooks.EndpointView: ...

    def rotate_webhook_secret(self, endpoint_id: str) -> webhooks.EndpointWithSecret:
        """A new secret; the old one keeps signing for the overlap of the side that
        stores it."""
        ...

    def test_webhook(self, endpoint_id: str) -> webhooks.TestResult:
        """Send a signed test event now, from the side that stores the endpoint."""
        ...

    def list_webhook_deliveries(self, filters: DeliveryFilter) -> list[webhooks.DeliveryView]:
        """Newest first."""
        ...

    def replay_webhook_delivery(self, delivery_id: str) -> webhooks.DeliveryView:
        """Queue a delivery again (the same webhook-id, signed afresh)."""
        ...

    def replay_dead_letters(self, request: webhooks.ReplayRequest) -> webhooks.ReplayResult:
        """Queue again an endpoint's dead letters written in a time range."""
        ...


def resolve_step(backend: Backend, run_id: str, step: str | None) -> str | None:
    """The stepRecordId that ``step`` names in the run: a step id of the definition or a
    stepRecordId itself (None stays None: the service picks the last failed step)."""
    if step is None:
        return None
    detail = backend.detail(run_id)
    for view in detail.steps:
        if step in (view.stepId, view.stepRecordId):
            return view.stepRecordId
    known = ", ".join(s.stepId for s in detail.steps)
    raise NotFound(f"step {step} not found in run {detail.run.id} (steps: {known})")
