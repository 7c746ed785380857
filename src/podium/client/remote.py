"""A Podium server as a :class:`~podium.client.backend.Backend`: the HTTP API of spec
section 13, answering with the same views the service functions return."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter, ValidationError

from podium import __version__
from podium.client import backend as port  # the requests the port takes
from podium.client import sse
from podium.client.problems import (
    ServerUnreachable,
    UnexpectedResponse,
    problem_error,
    transport_error,
)
from podium.domain.definition import Definition, parse_definition
from podium.errors import ConfigurationError, PodiumError
from podium.service.agent_views import AgentDetail, AgentView
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

# The views of approvals, the cache and webhooks live beside their service functions, which
# import the store (SQLAlchemy): the methods that parse them import them.
if TYPE_CHECKING:
    from podium.agents.registry.admission import AgentRegistration
    from podium.doctor.views import DiagnosticsView
    from podium.service import approvals, cache, webhooks
    from podium.service.agent_views import AgentChanges

T = TypeVar("T")

TIMEOUT_SECONDS = 30.0
# the server sends a keepalive at least every 15 s: three missed ones mean a dead connection
STREAM_READ_SECONDS = 45.0
RECONNECTS = 32  # about a minute of trying before giving up on a dropped stream (a restart)
EVENT_PAGE = 1000
TERMINAL = frozenset({"completed", "failed", "aborted"})
APPROVALS = "/api/orchestrations/approvals"
CACHE = "/api/admin/cache"
WEBHOOKS = "/api/admin/webhooks"
NO_KEY_HINT = " (give an API key with --api-key or PODIUM_API_KEY)"


def _segment(value: str) -> str:
    return quote(value, safe="")


def reconnect_delay(attempt: int) -> float:
    """0.25 s, 0.5 s, 1 s, then every 2 s."""
    return float(min(0.25 * 2 ** (attempt - 1), 2.0))


class RemoteBackend:
    """Runs and definitions on the Podium server at ``url``, as the owner of ``api_key``."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        transport: httpx.AsyncBaseTransport | httpx.BaseTransport | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"PODIUM_URL: {url!r} is not an http:// or https:// URL")
        self.url = url.rstrip("/")
        self.api_key = api_key or None
        self._transport = transport
        headers = {"User-Agent": f"podium-cli/{__version__}", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        self._headers = headers
        sync = transport if isinstance(transport, httpx.BaseTransport) else None
        self.http = httpx.Client(
            base_url=self.url, headers=headers, timeout=TIMEOUT_SECONDS, transport=sync
        )

    def __enter__(self) -> RemoteBackend:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.http.close()

    @property
    def where(self) -> str:
        return self.url

    @property
    def _hint(self) -> str:
        return "" if self.api_key else NO_KEY_HINT

    # -- requests -------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise transport_error(self.url, exc) from None
        if response.is_error:
            raise problem_error(response, hint=self._hint)
        return response

    def _parse(self, kind: type[T], response: httpx.Response) -> T:
        try:
            value = TypeAdapter(kind).validate_json(response.content)
        except ValidationError as exc:
            where = f"{response.request.method} {response.request.url.path}"
            first = exc.errors()[0]
            raise UnexpectedResponse(
                f"unexpected answer from {self.url} to {where}: {first['msg']} "
                f"at {'.'.join(str(p) for p in first['loc'])}"
            ) from None
        return value

    def _get(self, kind: type[T], path: str, /, **params: Any) -> T:
        """``GET path?params`` parsed as ``kind``; a parameter that is None is not sent."""
        given = {k: v for k, v in params.items() if v is not None}
        return self._parse(kind, self._request("GET", path, params=given or None))

    def _post(self, kind: type[T], path: str, body: Any = None, **kwargs: Any) -> T:
        return self._parse(kind, self._request("POST", path, json=body, **kwargs))

    def _patch(self, kind: type[T], path: str, body: Any) -> T:
        return self._parse(kind, self._request("PATCH", path, json=body))

    @staticmethod
    def _run_path(run_id: str) -> str:
        return f"/api/orchestrations/{_segment(run_id)}"

    # -- runs -----------------------------------------------------------------------------

    def launch(
        self,
        definition: str,
        version: str | None,
        parameters: dict[str, Any],
        *,
        refresh: bool = False,
    ) -> RunSummary:
        body: dict[str, Any] = {
            "definition": definition,
            "version": version,
            "parameters": parameters,
        }
        if refresh:
            body["refresh"] = True
        return self._post(RunSummary, "/api/orchestrations", body)

    def list_runs(self, filters: port.RunFilter) -> Page[RunSummary]:
        return self._get(
            Page[RunSummary],
            "/api/orchestrations",
            status=filters.status or None,
            lifecycle=filters.lifecycle,
            definition=filters.definition,
            search=filters.search,
            cursor=filters.cursor,
            limit=filters.limit,
        )

    def detail(self, run_id: str) -> RunDetail:
        return self._get(RunDetail, self._run_path(run_id))

    def tree(self, run_id: str) -> list[RunTreeNode]:
        return self._get(list[RunTreeNode], f"{self._run_path(run_id)}/tree")

    def step(self, run_id: str, step_record_id: str) -> StepDetail:
        path = f"{self._run_path(run_id)}/steps/{_segment(step_record_id)}"
        return self._get(StepDetail, path)

    def events(self, run_id: str, after: int = 0) -> list[EventView]:
        found: list[EventView] = []
        while True:
            path = f"{self._run_path(run_id)}/events"
            page = self._get(list[EventView], path, after=after, limit=EVENT_PAGE)
            found.extend(page)
            if len(page) < EVENT_PAGE:
                return found
            after = page[-1].sequence

    def definition_of(self, run: RunView) -> Definition | None:
        """The version the run was launched from (versions are immutable, so it is the
        run's snapshot); None when it cannot be read."""
        try:
            view = self.show_definition(run.definition, run.version)
            return parse_definition(view.document or {})
        except PodiumError:
            return None

    async def follow_events(self, run_id: str, after: int = 0) -> AsyncIterator[EventView]:
        """Follows ``/stream``; a dropped connection is resumed with ``Last-Event-ID``."""
        path = f"{self._run_path(run_id)}/stream"
        timeout = httpx.Timeout(TIMEOUT_SECONDS, read=STREAM_READ_SECONDS)
        transport = (
            self._transport if isinstance(self._transport, httpx.AsyncBaseTransport) else None
        )
        failures = 0
        async with httpx.AsyncClient(
            base_url=self.url, headers=self._headers, timeout=timeout, transport=transport
        ) as client:
            while True:
                headers = {"Accept": "text/event-stream"}
                if after:
                    headers["Last-Event-ID"] = str(after)
                dropped: httpx.TransportError | None = None
                try:
                    async with client.stream("GET", path, headers=headers) as response:
                        if response.is_error:
                            await response.aread()
                            raise problem_error(response, hint=self._hint)
                        async for item in sse.decode(response.aiter_lines()):
                            if item.event in ("complete", "error"):
                                self._ended(run_id, item)
                                return
                            event = self._event(item)
                            if event is not None and event.sequence > after:
                                after, failures = event.sequence, 0
                                yield event
                except httpx.TransportError as exc:
                    if after == 0 and failures == 0 and isinstance(exc, httpx.ConnectError):
                        raise transport_error(self.url, exc) from None  # never connected
                    dropped = exc
                failures += 1  # dropped, or ended without its terminal event: resume
                if failures > RECONNECTS:
                    if dropped is not None:
                        raise transport_error(self.url, dropped) from None
                    raise ServerUnreachable(
                        f"the stream of run {run_id} from {self.url} keeps ending early"
                    )
                await asyncio.sleep(reconnect_delay(failures))

    @staticmethod
    def _event(item: sse.ServerSentEvent) -> EventView | None:
        try:
            return EventView.model_validate_json(item.data)
        except ValidationError:
            return None  # not an event of the run (a future kind of message)

    @staticmethod
    def _ended(run_id: str, item: sse.ServerSentEvent) -> None:
        """The final message: ``complete`` when the run completed, ``error`` when it failed
        or was aborted. An ``error`` that names no terminal status is the server's own."""
        try:
            body = json.loads(item.data)
        except ValueError:
            body = None
        body = body if isinstance(body, dict) else {}
        if item.event == "complete" or body.get("status") in TERMINAL:
            return
        message = body.get("detail") or body.get("message") or item.data or "no reason given"
        raise PodiumError(f"the server ended the stream of run {run_id}: {message}")

    # -- recovery -------------------------------------------------------------------------

    def _action(self, run_id: str, name: str, body: dict[str, Any]) -> ActionView:
        path = f"{self._run_path(run_id)}/actions/{name}"
        return self._post(ActionView, path, {k: v for k, v in body.items() if v is not None})

    def retry(self, run_id: str, action: port.Recovery) -> ActionView:
        body = {
            "stepRecordId": action.step_record_id,
            "note": action.note,
            "delaySeconds": action.delay_seconds or None,
            "modifications": action.modifications,
            "resumeChild": action.resume_child or None,
        }
        return self._action(run_id, "retry", body)

    def skip(self, run_id: str, action: port.Recovery) -> ActionView:
        body = {
            "stepRecordId": action.step_record_id,
            "note": action.note,
            "replacementOutput": action.replacement_output,
        }
        return self._action(run_id, "skip", body)

    def abort(self, run_id: str, action: port.Recovery) -> ActionView:
        body = {"note": action.note, "force": action.force or None}
        return self._action(run_id, "abort", body)

    # -- definitions ----------------------------------------------------------------------

    def _document(self, source: bytes) -> dict[str, Any]:
        return {"content": source, "headers": {"Content-Type": "application/yaml"}}

    def validate(self, source: bytes) -> ValidationView:
        response = self._request("POST", "/api/definitions/validate", **self._document(source))
        return self._parse(ValidationView, response)

    def push(self, source: bytes, *, activate: bool) -> tuple[DefinitionView, bool]:
        params = {"activate": "true" if activate else "false"}
        response = self._request(
            "POST", "/api/definitions", params=params, **self._document(source)
        )
        return self._parse(DefinitionView, response), response.status_code == 201

    def list_definitions(self) -> list[DefinitionSummary]:
        return self._get(list[DefinitionSummary], "/api/definitions")

    def show_definition(self, name: str, version: str | None) -> DefinitionView:
        path = f"/api/definitions/{_segment(name)}"
        if version is not None:
            path += f"/versions/{_segment(version)}"
        return self._get(DefinitionView, path)

    def set_definition_status(self, name: str, version: str, status: str) -> DefinitionView:
        verb = {"active": "activate", "inactive": "deactivate"}[status]
        path = f"/api/definitions/{_segment(name)}/versions/{_segment(version)}/{verb}"
        return self._post(DefinitionView, path)

    # -- the agent registry ---------------------------------------------------------------

    @staticmethod
    def _agent_path(slug: str) -> str:
        return f"/api/admin/agents/{_segment(slug)}"

    def list_agents(self) -> list[AgentView]:
        return self._get(Page[AgentView], "/api/admin/agents").items

    def show_agent(self, slug: str) -> AgentDetail:
        return self._get(AgentDetail, self._agent_path(slug))

    def register_agent(self, registration: AgentRegistration) -> AgentDetail:
        body = registration.model_dump(mode="json", exclude_none=True)
        return self._post(AgentDetail, "/api/admin/agents", body)

    def update_agent(self, slug: str, changes: AgentChanges) -> AgentDetail:
        body = changes.model_dump(mode="json", exclude_unset=True)
        return self._patch(AgentDetail, self._agent_path(slug), body)

    def refresh_agent(self, slug: str) -> AgentDetail:
        return self._post(AgentDetail, f"{self._agent_path(slug)}/refresh")

    # -- API keys -------------------------------------------------------------------------

    def create_key(self, organization: str | None, role: str, name: str | None) -> CreatedApiKey:
        body = {"organization": organization, "role": role, "name": name}
        return self._post(CreatedApiKey, "/api/admin/keys", {k: v for k, v in body.items() if v})

    def list_keys(self, organization: str | None) -> list[ApiKeyView]:
        return self._get(
            Page[ApiKeyView], "/api/admin/keys", organization=organization or None
        ).items

    def revoke_key(self, key_id: str) -> ApiKeyView:
        return self._post(ApiKeyView, f"/api/admin/keys/{_segment(key_id)}/revoke")

    # -- diagnostics ----------------------------------------------------------------------

    def diagnostics(
        self, only: list[str], run_id: str | None, stalled_after: float
    ) -> DiagnosticsView:
        from podium.doctor.views import DiagnosticsView  # the doctor's checks: only for it

        return self._get(
            DiagnosticsView,
            "/api/admin/diagnostics",
            stalledAfter=stalled_after,
            only=only or None,
            run=run_id,
        )

    # -- approvals ------------------------------------------------------------------------

    def _approval_path(self, approval_id: str) -> str:
        return f"{APPROVALS}/{_segment(approval_id)}"

    def list_approvals(self, filters: port.ApprovalFilter) -> Page[approvals.ApprovalView]:
        from podium.service import approvals

        return self._get(
            Page[approvals.ApprovalView],
            APPROVALS,
            status=filters.status or None,
            runId=filters.run_id,
            definition=filters.definition,
            kind=filters.kind,
            cursor=filters.cursor,
            limit=filters.limit,
        )

    def show_approval(self, approval_id: str) -> approvals.ApprovalView:
        from podium.service import approvals

        return self._get(approvals.ApprovalView, self._approval_path(approval_id))

    def decide_approval(self, approval_id: str, decision: port.Decision) -> approvals.DecisionView:
        from podium.service import approvals

        body = {
            "decision": decision.decision,
            "note": decision.note,
            "modifications": decision.modifications,
            "response": decision.response,
        }
        path = f"{self._approval_path(approval_id)}/decision"
        return self._post(
            approvals.DecisionView, path, {k: v for k, v in body.items() if v is not None}
        )

    # -- the step cache -------------------------------------------------------------------

    def _cache_params(self, selection: port.CacheSelection) -> dict[str, Any]:
        return {
            "definition": selection.definition,
            "step": selection.step,
            "fingerprint": selection.fingerprint,
            "olderThanSeconds": selection.older_than_seconds,
            "expired": selection.expired or None,
        }

    def cache_stats(self) -> cache.CacheStats:
        from podium.service import cache

        return self._get(cache.CacheStats, f"{CACHE}/stats")

    def list_cache(self, selection: port.CacheSelection, limit: int) -> list[cache.CacheEntryView]:
        from podium.service import cache

        params = self._cache_params(selection)
        return self._get(Page[cache.CacheEntryView], CACHE, limit=limit, **params).items

    def clear_cache(self, selection: port.CacheSelection, *, everything: bool) -> int:
        from podium.service import cache

        params = {k: v for k, v in self._cache_params(selection).items() if v is not None}
        if everything:
            params["all"] = True
        response = self._request("DELETE", CACHE, params=params or None)
        return self._parse(cache.Deleted, response).deleted

    # -- webhooks -------------------------------------------------------------------------

    def _webhook_path(self, endpoint_id: str) -> str:
        return f"{WEBHOOKS}/{_segment(endpoint_id)}"

    def list_webhooks(self) -> list[webhooks.EndpointView]:
        from podium.service import webhooks

        return self._get(Page[webhooks.EndpointView], WEBHOOKS).items

    def register_webhook(
        self, registration: webhooks.EndpointRegistration
    ) -> webhooks.EndpointWithSecret:
        from podium.service import webhooks

        body = registration.model_dump(mode="json", exclude_none=True)
        return self._post(webhooks.EndpointWithSecret, WEBHOOKS, body)

    def show_webhook(self, endpoint_id: str) -> webhooks.EndpointView:
        from podium.service import webhooks

        return self._get(webhooks.EndpointView, self._webhook_path(endpoint_id))

    def update_webhook(
        self, endpoint_id: str, changes: webhooks.EndpointChanges
    ) -> webhooks.EndpointView:
        from podium.service import webhooks

        body = changes.model_dump(mode="json", exclude_unset=True)
        return self._patch(webhooks.EndpointView, self._webhook_path(endpoint_id), body)

    def rotate_webhook_secret(self, endpoint_id: str) -> webhooks.EndpointWithSecret:
        from podium.service import webhooks

        path = f"{self._webhook_path(endpoint_id)}/rotate-secret"
        return self._post(webhooks.EndpointWithSecret, path)

    def test_webhook(self, endpoint_id: str) -> webhooks.TestResult:
        from podium.service import webhooks

        return self._post(webhooks.TestResult, f"{self._webhook_path(endpoint_id)}/test")

    def list_webhook_deliveries(self, filters: port.DeliveryFilter) -> list[webhooks.DeliveryView]:
        from podium.service import webhooks

        return self._get(
            Page[webhooks.DeliveryView],
            f"{WEBHOOKS}/deliveries",
            endpoint=filters.endpoint_id,
            status=filters.status,
            since=filters.since.isoformat() if filters.since else None,
            limit=filters.limit,
        ).items

    def replay_webhook_delivery(self, delivery_id: str) -> webhooks.DeliveryView:
        from podium.service import webhooks

        path = f"{WEBHOOKS}/deliveries/{_segment(delivery_id)}/replay"
        return self._post(webhooks.DeliveryView, path)

    def replay_dead_letters(self, request: webhooks.ReplayRequest) -> webhooks.ReplayResult:
        from podium.service import webhooks

        body = request.model_dump(mode="json", exclude_none=True)
        return self._post(webhooks.ReplayResult, f"{WEBHOOKS}/deliveries/replay", body)
