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
from typing import TYPE_CHECKING, Any, Protocol

from podium.errors import NotFound

# The port names the views only in annotations: importing them (pydantic, and the doctor's
# checks behind DiagnosticsView) is left to the implementations, so that a command pays
# for what it uses.
if TYPE_CHECKING:
    from podium.agents.registry.admission import AgentRegistration
    from podium.doctor.views import DiagnosticsView
    from podium.domain.definition import Definition
    from podium.service.agent_views import AgentChanges, AgentDetail, AgentView
    from podium.service.views import (
        ActionView,
        ApiKeyView,
        CreatedApiKey,
        DefinitionSummary,
        DefinitionView,
        EventView,
        Page,
        RunDetail,
        RunSummary,
        RunTreeNode,
        RunView,
        StepDetail,
        ValidationView,
    )


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


class Backend(Protocol):
    """Runs and definitions of one organization, wherever they are kept."""

    @property
    def where(self) -> str:
        """The database (without password) or the server URL, for messages."""
        ...

    # -- runs
    def launch(
        self, definition: str, version: str | None, parameters: dict[str, Any]
    ) -> RunSummary: ...

    def list_runs(self, filters: RunFilter) -> Page[RunSummary]: ...

    def detail(self, run_id: str) -> RunDetail: ...

    def step(self, run_id: str, step_record_id: str) -> StepDetail: ...

    def tree(self, run_id: str) -> list[RunTreeNode]:
        """The run and its descendants, depth-first (issue 11)."""
        ...

    def events(self, run_id: str, after: int = 0) -> list[EventView]:
        """Every event of the run after ``after`` (all pages)."""
        ...

    def follow_events(self, run_id: str, after: int = 0) -> AsyncIterator[EventView]:
        """The run's events after ``after`` as they happen, ending once the run is in a
        terminal status and every event up to it was given."""
        ...

    def definition_of(self, run: RunView) -> Definition | None:
        """The run's definition (for retry limits), or None when it cannot be read."""
        ...

    # -- recovery
    def retry(self, run_id: str, action: Recovery) -> ActionView: ...

    def skip(self, run_id: str, action: Recovery) -> ActionView: ...

    def abort(self, run_id: str, action: Recovery) -> ActionView: ...

    # -- definitions
    def validate(self, source: bytes) -> ValidationView: ...

    def push(self, source: bytes, *, activate: bool) -> tuple[DefinitionView, bool]: ...

    def list_definitions(self) -> list[DefinitionSummary]: ...

    def show_definition(self, name: str, version: str | None) -> DefinitionView: ...

    def set_definition_status(self, name: str, version: str, status: str) -> DefinitionView: ...

    # -- the agent registry (podium agents)
    def list_agents(self) -> list[AgentView]:
        """The agents a run of the organization can use: its own, global's, built-in."""
        ...

    def show_agent(self, slug: str) -> AgentDetail: ...

    def register_agent(self, registration: AgentRegistration) -> AgentDetail:
        """Register an agent; an A2A agent's card is fetched now, its URL checked by the
        guard of the side that fetches it (the local process or the server)."""
        ...

    def update_agent(self, slug: str, changes: AgentChanges) -> AgentDetail: ...

    def refresh_agent(self, slug: str) -> AgentDetail:
        """Fetch an A2A agent's card again."""
        ...

    # -- API keys (podium keys)
    def create_key(self, organization: str | None, role: str, name: str | None) -> CreatedApiKey:
        """A new key (shown in the answer only); ``organization`` None: the caller's."""
        ...

    def list_keys(self, organization: str | None) -> list[ApiKeyView]:
        """Keys of ``organization``, oldest first; None: of every organization the caller
        manages (all of them on the local database, the key's own on a server)."""
        ...

    def revoke_key(self, key_id: str) -> ApiKeyView: ...

    # -- diagnostics (podium doctor)
    def diagnostics(
        self, only: list[str], run_id: str | None, stalled_after: float
    ) -> DiagnosticsView:
        """The doctor's findings (read-only): every organization's on the local database,
        the API key's scope on a server."""
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
