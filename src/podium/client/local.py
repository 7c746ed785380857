"""The local database as a :class:`~podium.client.backend.Backend`: the service functions,
called as the local actor (an admin of ``PODIUM_ORG``, who manages every organization's
API keys)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from podium.client import backend as port  # the requests the port takes
from podium.errors import PodiumError
from podium.service import runs, views
from podium.service.actors import Actor

# What only some commands use (launching, recovery, definitions, approvals, the cache,
# webhooks, the doctor's checks) is imported by the methods that need it: `podium runs
# list` loads the run queries only.
if TYPE_CHECKING:
    from podium.agents.registry.admission import AgentChecks, AgentRegistration
    from podium.doctor import views as doctor_views
    from podium.domain.definition import Definition
    from podium.events.webhooks.config import WebhookSettings
    from podium.net.urlguard import UrlGuard
    from podium.service import agent_views, approvals, cache, webhooks
    from podium.settings import Settings
    from podium.storage.cache import CacheFilter
    from podium.storage.store import SqlStore

POLL_SECONDS = 0.1
EVENT_PAGE = 1000
TERMINAL = frozenset({"completed", "failed", "aborted"})


class LocalBackend:
    """Runs, definitions, approvals, agents, keys, the step cache and webhooks in the local
    database (``DATABASE_URL``).

    ``agent_checks`` admit agents to the registry; by default the environment's, trusted
    as the local operator is (any python module). Webhook URLs go through the environment's
    guard (``PODIUM_WEBHOOK_URL_ALLOWLIST``) and rotations and tests follow its
    ``PODIUM_WEBHOOK_*`` settings."""

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
    ) -> views.RunSummary:
        summary, _replayed = runs.launch(
            self.store, self.actor, definition=definition, version=version, parameters=parameters
        )
        return summary

    def launch_document(
        self, definition: Definition, parameters: dict[str, Any], *, refresh: bool = False
    ) -> views.RunSummary:
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
        return views.RunSummary.of(self.store.get_run(run_id))

    def list_runs(self, filters: port.RunFilter) -> views.Page[views.RunSummary]:
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

    def detail(self, run_id: str) -> views.RunDetail:
        return runs.detail(self.store, self.actor, run_id)

    def step(self, run_id: str, step_record_id: str) -> views.StepDetail:
        return runs.step(self.store, self.actor, run_id, step_record_id)

    def tree(self, run_id: str) -> list[views.RunTreeNode]:
        return runs.tree(self.store, self.actor, run_id)

    def events(self, run_id: str, after: int = 0) -> list[views.EventView]:
        found: list[views.EventView] = []
        while True:
            page = runs.events(self.store, self.actor, run_id, after=after, limit=EVENT_PAGE)
            found.extend(page)
            if len(page) < EVENT_PAGE:
                return found
            after = page[-1].sequence

    async def follow_events(self, run_id: str, after: int = 0) -> AsyncIterator[views.EventView]:
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

    def definition_of(self, run: views.RunView) -> Definition | None:
        """The snapshot the run is pinned to."""
        from podium.domain.definition import parse_definition

        try:
            return parse_definition(self.store.get_snapshot(run.id))
        except PodiumError:
            return None

    # -- recovery -------------------------------------------------------------------------

    def retry(self, run_id: str, action: port.Recovery) -> views.ActionView:
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

    def skip(self, run_id: str, action: port.Recovery) -> views.ActionView:
        from podium.service import recovery

        return recovery.skip(
            self.store,
            self.actor,
            run_id,
            step_record_id=action.step_record_id,
            note=action.note,
            replacement_output=action.replacement_output,
        )

    def abort(self, run_id: str, action: port.Recovery) -> views.ActionView:
        from podium.service import recovery

        return recovery.abort(self.store, self.actor, run_id, note=action.note, force=action.force)

    # -- definitions ----------------------------------------------------------------------

    def validate(self, source: bytes) -> views.ValidationView:
        from podium.service import definitions

        return definitions.validate(source)

    def push(self, source: bytes, *, activate: bool) -> tuple[views.DefinitionView, bool]:
        from podium.service import definitions

        return definitions.push(self.store, self.actor, source, activate=activate)

    def list_definitions(self) -> list[views.DefinitionSummary]:
        from podium.service import definitions

        return definitions.list_definitions(self.store, self.actor)

    def show_definition(self, name: str, version: str | None) -> views.DefinitionView:
        from podium.service import definitions

        return definitions.show(self.store, self.actor, name, version)

    def set_definition_status(self, name: str, version: str, status: str) -> views.DefinitionView:
        from podium.service import definitions

        return definitions.set_status(self.store, self.actor, name, version, status)

    # -- the agent registry ---------------------------------------------------------------

    @property
    def agent_checks(self) -> AgentChecks:
        if self._agent_checks is None:
            from podium.agents.registry.admission import AgentChecks

            self._agent_checks = AgentChecks.from_env(trusted=True)
        return self._agent_checks

    def list_agents(self) -> list[agent_views.AgentView]:
        from podium.service import agents

        return agents.list_agents(self.store, self.actor)

    def show_agent(self, slug: str) -> agent_views.AgentDetail:
        from podium.service import agents

        return agents.show(self.store, self.actor, slug)

    def register_agent(self, registration: AgentRegistration) -> agent_views.AgentDetail:
        from podium.service import agents

        return agents.register(self.store, self.actor, registration, self.agent_checks)

    def update_agent(self, slug: str, changes: agent_views.AgentChanges) -> agent_views.AgentDetail:
        from podium.service import agents

        return agents.update(self.store, self.actor, slug, changes, self.agent_checks)

    def refresh_agent(self, slug: str) -> agent_views.AgentDetail:
        from podium.service import agents

        return agents.refresh(self.store, self.actor, slug, self.agent_checks)

    # -- API keys -------------------------------------------------------------------------

    def create_key(
        self, organization: str | None, role: str, name: str | None
    ) -> views.CreatedApiKey:
        from podium.service import keys

        return keys.create(self.store, self.actor, organization=organization, role=role, name=name)

    def list_keys(self, organization: str | None) -> list[views.ApiKeyView]:
        from podium.service import keys

        return keys.list_keys(self.store, self.actor, organization)

    def revoke_key(self, key_id: str) -> views.ApiKeyView:
        from podium.service import keys

        return keys.revoke(self.store, self.actor, key_id)

    # -- diagnostics ----------------------------------------------------------------------

    def diagnostics(
        self, only: list[str], run_id: str | None, stalled_after: float
    ) -> doctor_views.DiagnosticsView:
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

    # -- approvals ------------------------------------------------------------------------

    def list_approvals(self, filters: port.ApprovalFilter) -> views.Page[approvals.ApprovalView]:
        from podium.service import approvals

        return approvals.list_approvals(
            self.store,
            self.actor,
            status=filters.status,
            run_id=filters.run_id,
            definition=filters.definition,
            kind=filters.kind,
            cursor=filters.cursor,
            limit=filters.limit,
        )

    def show_approval(self, approval_id: str) -> approvals.ApprovalView:
        from podium.service import approvals

        return approvals.show(self.store, self.actor, approval_id)

    def decide_approval(self, approval_id: str, decision: port.Decision) -> approvals.DecisionView:
        from podium.service import approvals

        view, _replayed = approvals.decide(
            self.store,
            self.actor,
            approval_id,
            decision=decision.decision,
            note=decision.note,
            modifications=decision.modifications,
            response=decision.response,
        )
        return view

    # -- the step cache -------------------------------------------------------------------

    @staticmethod
    def _cache_filter(selection: port.CacheSelection) -> CacheFilter:
        from podium.service import cache

        return cache.cache_filter(
            definition=selection.definition,
            step=selection.step,
            fingerprint=selection.fingerprint,
            older_than_seconds=selection.older_than_seconds,
            expired=selection.expired,
        )

    def cache_stats(self) -> cache.CacheStats:
        from podium.service import cache

        return cache.stats(self.store, self.actor)

    def list_cache(self, selection: port.CacheSelection, limit: int) -> list[cache.CacheEntryView]:
        from podium.service import cache

        where = self._cache_filter(selection)
        return cache.list_entries(self.store, self.actor, where, limit=limit)

    def clear_cache(self, selection: port.CacheSelection, *, everything: bool) -> int:
        from podium.service import cache

        where = self._cache_filter(selection)
        return cache.clear(self.store, self.actor, where, everything=everything)

    # -- webhooks -------------------------------------------------------------------------

    @property
    def webhook_guard(self) -> UrlGuard:
        from podium.net.urlguard import UrlGuard

        return UrlGuard.from_env(subject="WEBHOOK")

    @property
    def webhook_settings(self) -> WebhookSettings:
        from podium.events.webhooks.config import WebhookSettings

        return WebhookSettings.from_env()

    def list_webhooks(self) -> list[webhooks.EndpointView]:
        from podium.service import webhooks

        return webhooks.list_endpoints(self.store.webhooks, self.actor)

    def register_webhook(
        self, registration: webhooks.EndpointRegistration
    ) -> webhooks.EndpointWithSecret:
        from podium.service import webhooks

        return webhooks.register(self.store.webhooks, self.actor, registration, self.webhook_guard)

    def show_webhook(self, endpoint_id: str) -> webhooks.EndpointView:
        from podium.service import webhooks

        return webhooks.show(self.store.webhooks, self.actor, endpoint_id)

    def update_webhook(
        self, endpoint_id: str, changes: webhooks.EndpointChanges
    ) -> webhooks.EndpointView:
        from podium.service import webhooks

        return webhooks.update(
            self.store.webhooks, self.actor, endpoint_id, changes, self.webhook_guard
        )

    def rotate_webhook_secret(self, endpoint_id: str) -> webhooks.EndpointWithSecret:
        from podium.service import webhooks

        overlap = self.webhook_settings.rotation_overlap_seconds
        return webhooks.rotate(self.store.webhooks, self.actor, endpoint_id, overlap)

    def test_webhook(self, endpoint_id: str) -> webhooks.TestResult:
        from podium.service import webhooks

        endpoint = webhooks.endpoint_to_test(self.store.webhooks, self.actor, endpoint_id)
        sending = webhooks.send_test(endpoint, self.webhook_guard, self.webhook_settings)
        return asyncio.run(sending)

    def list_webhook_deliveries(self, filters: port.DeliveryFilter) -> list[webhooks.DeliveryView]:
        from podium.service import webhooks

        return webhooks.list_deliveries(
            self.store.webhooks,
            self.actor,
            endpoint_id=filters.endpoint_id,
            status=filters.status,
            since=filters.since,
            limit=filters.limit,
        )

    def replay_webhook_delivery(self, delivery_id: str) -> webhooks.DeliveryView:
        from podium.service import webhooks

        return webhooks.replay(self.store.webhooks, self.actor, delivery_id)

    def replay_dead_letters(self, request: webhooks.ReplayRequest) -> webhooks.ReplayResult:
        from podium.service import webhooks

        return webhooks.replay_dead(self.store.webhooks, self.actor, request)
