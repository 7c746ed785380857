"""The local database as a :class:`~podium.client.backend.Backend`: the service functions,
called as the local actor (an admin of ``PODIUM_ORG``, who manages every organization's
API keys)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from podium.client.backend import Recovery, RunFilter
from podium.errors import PodiumError
from podium.service import runs
from podium.service.actors import Actor
from podium.service.views import RunSummary

# What only some commands use (launching, recovery, definitions, the doctor's checks) is
# imported by the methods that need it: `podium runs list` loads the run queries only.
if TYPE_CHECKING:
    from podium.agents.registry.admission import AgentChecks, AgentRegistration
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
        RunTreeNode,
        RunView,
        StepDetail,
        ValidationView,
    )
    from podium.settings import Settings
    from podium.storage.store import SqlStore

POLL_SECONDS = 0.1
EVENT_PAGE = 1000
TERMINAL = frozenset({"completed", "failed", "aborted"})


class LocalBackend:
    """Runs, definitions, agents and keys in the local database (``DATABASE_URL``).

    ``agent_checks`` admit agents to the registry; by default the environment's, trusted
    as the local operator is (any python module)."""

    def __init__(
        self, store: SqlStore, settings: Settings, *, agent_checks: AgentChecks | None = None
    ) -> None:
        self.store = store
        self.settings = settings
        self.actor = Actor.local(settings.organization)
        self._agent_checks = agent_checks

    @property
    def where(self) -> str:
        return self.store.describe()

    # -- runs -----------------------------------------------------------------------------

    def launch(
        self, definition: str, version: str | None, parameters: dict[str, Any]
    ) -> RunSummary:
        summary, _replayed = runs.launch(
            self.store, self.actor, definition=definition, version=version, parameters=parameters
        )
        return summary

    def launch_document(
        self, definition: Definition, parameters: dict[str, Any], *, refresh: bool = False
    ) -> RunSummary:
        """Launch a run of a definition document that need not be pushed (``podium run``
        on the local database: edit the file, run it again). ``refresh``: recompute cached
        steps."""
        from podium.engine.launcher import launch

        metadata: dict[str, Any] = {"launchedBy": self.actor.name}
        if refresh:
            metadata["refreshCache"] = True
        run_id = launch(
            self.store,
            definition,
            parameters,
            organization=self.actor.organization,
            metadata=metadata,
        )
        return RunSummary.of(self.store.get_run(run_id))

    def list_runs(self, filters: RunFilter) -> Page[RunSummary]:
        return runs.list_runs(
            self.store,
            self.actor,
            status=filters.status,
            lifecycle=filters.lifecycle,
            definition=filters.definition,
            search=filters.search,
            cursor=filters.cursor,
            limit=filters.limit,
        )

    def detail(self, run_id: str) -> RunDetail:
        return runs.detail(self.store, self.actor, run_id)

    def step(self, run_id: str, step_record_id: str) -> StepDetail:
        return runs.step(self.store, self.actor, run_id, step_record_id)

    def tree(self, run_id: str) -> list[RunTreeNode]:
        return runs.tree(self.store, self.actor, run_id)

    def events(self, run_id: str, after: int = 0) -> list[EventView]:
        found: list[EventView] = []
        while True:
            page = runs.events(self.store, self.actor, run_id, after=after, limit=EVENT_PAGE)
            found.extend(page)
            if len(page) < EVENT_PAGE:
                return found
            after = page[-1].sequence

    async def follow_events(self, run_id: str, after: int = 0) -> AsyncIterator[EventView]:
        """Polls every 100 ms. The status is read before the events: a run seen terminal
        has committed its last event together with that status, so the events read next
        include it."""
        while True:
            status = await asyncio.to_thread(runs.status, self.store, self.actor, run_id)
            for event in await asyncio.to_thread(self.events, run_id, after):
                after = event.sequence
                yield event
            if status.status in TERMINAL:
                return
            await asyncio.sleep(POLL_SECONDS)

    def definition_of(self, run: RunView) -> Definition | None:
        """The snapshot the run is pinned to."""
        from podium.domain.definition import parse_definition

        try:
            return parse_definition(self.store.get_snapshot(run.id))
        except PodiumError:
            return None

    # -- recovery -------------------------------------------------------------------------

    def retry(self, run_id: str, action: Recovery) -> ActionView:
        from podium.service import recovery

        return recovery.retry(
            self.store,
            self.actor,
            run_id,
            step_record_id=action.step_record_id,
            note=action.note,
            delay_seconds=action.delay_seconds,
            modifications=action.modifications,
            resume_child=action.resume_child,
        )

    def skip(self, run_id: str, action: Recovery) -> ActionView:
        from podium.service import recovery

        return recovery.skip(
            self.store,
            self.actor,
            run_id,
            step_record_id=action.step_record_id,
            note=action.note,
            replacement_output=action.replacement_output,
        )

    def abort(self, run_id: str, action: Recovery) -> ActionView:
        from podium.service import recovery

        return recovery.abort(self.store, self.actor, run_id, note=action.note, force=action.force)

    # -- definitions ----------------------------------------------------------------------

    def validate(self, source: bytes) -> ValidationView:
        from podium.service import definitions

        return definitions.validate(source)

    def push(self, source: bytes, *, activate: bool) -> tuple[DefinitionView, bool]:
        from podium.service import definitions

        return definitions.push(self.store, self.actor, source, activate=activate)

    def list_definitions(self) -> list[DefinitionSummary]:
        from podium.service import definitions

        return definitions.list_definitions(self.store, self.actor)

    def show_definition(self, name: str, version: str | None) -> DefinitionView:
        from podium.service import definitions

        return definitions.show(self.store, self.actor, name, version)

    def set_definition_status(self, name: str, version: str, status: str) -> DefinitionView:
        from podium.service import definitions

        return definitions.set_status(self.store, self.actor, name, version, status)

    # -- the agent registry ---------------------------------------------------------------

    @property
    def agent_checks(self) -> AgentChecks:
        if self._agent_checks is None:
            from podium.agents.registry.admission import AgentChecks

            self._agent_checks = AgentChecks.from_env(trusted=True)
        return self._agent_checks

    def list_agents(self) -> list[AgentView]:
        from podium.service import agents

        return agents.list_agents(self.store, self.actor)

    def show_agent(self, slug: str) -> AgentDetail:
        from podium.service import agents

        return agents.show(self.store, self.actor, slug)

    def register_agent(self, registration: AgentRegistration) -> AgentDetail:
        from podium.service import agents

        return agents.register(self.store, self.actor, registration, self.agent_checks)

    def update_agent(self, slug: str, changes: AgentChanges) -> AgentDetail:
        from podium.service import agents

        return agents.update(self.store, self.actor, slug, changes, self.agent_checks)

    def refresh_agent(self, slug: str) -> AgentDetail:
        from podium.service import agents

        return agents.refresh(self.store, self.actor, slug, self.agent_checks)

    # -- API keys -------------------------------------------------------------------------

    def create_key(self, organization: str | None, role: str, name: str | None) -> CreatedApiKey:
        from podium.service import keys

        return keys.create(self.store, self.actor, organization=organization, role=role, name=name)

    def list_keys(self, organization: str | None) -> list[ApiKeyView]:
        from podium.service import keys

        return keys.list_keys(self.store, self.actor, organization)

    def revoke_key(self, key_id: str) -> ApiKeyView:
        from podium.service import keys

        return keys.revoke(self.store, self.actor, key_id)

    # -- diagnostics ----------------------------------------------------------------------

    def diagnostics(
        self, only: list[str], run_id: str | None, stalled_after: float
    ) -> DiagnosticsView:
        """Every organization's findings: the local operator owns the whole database."""
        from podium.doctor.runner import diagnose  # the doctor's checks: only for the doctor
        from podium.doctor.views import DiagnosticsView
        from podium.service.diagnostics import options_for

        if run_id is not None:
            run_id = self.store.find_run_id(run_id)
        options = options_for(
            self.settings, organization=None, run_id=run_id, stalled_after=stalled_after
        )
        return DiagnosticsView.of(diagnose(self.store, options, only))
