"""The ``a2a`` agent kind: a remote agent reached over the A2A protocol with the official
``a2a-sdk`` client (spec section 7). Agents speaking A2A v1.0 and v0.3, over JSON-RPC or
HTTP+JSON, are all supported (the SDK's compatibility layer picks the wire format from the
agent card).

One attempt of a step sends **one** message (see :mod:`podium.agents.a2a.results` for its
parts and metadata) and follows the task it starts to a settled state: over the message's
event stream when the card says ``capabilities.streaming``, else by polling ``GetTask`` with
a short backoff. As soon as the task id is known, and before waiting on the task, it is
recorded durably as ``metadata.runtime.a2a`` of the step (``context.save_runtime``)::

    {"taskId", "contextId", "agentUrl", "agentSlug", "messageId", "attempt", "generation"}

A step reclaimed after its worker died runs the same attempt again; finding that record (same
agent URL, attempt and generation) it does not send the message again but re-attaches to the
task (``SubscribeToTask``, or ``GetTask`` polling), unless the agent no longer knows the task,
in which case it sends the message anew. A retry (next attempt) always sends a new message.
Likewise, when the event stream breaks after the task exists, the attempt follows the task
up (``GetTask``, resubscribing) instead of sending again; contact may be lost for
``reconnect_seconds`` before the attempt fails.

States map to outcomes: ``COMPLETED`` → the normalized result; ``FAILED`` →
``agent_execution_error`` (retryable); ``REJECTED`` → ``agent_rejected``; ``CANCELED`` (not
asked for by Podium) → ``agent_execution_error`` "task canceled by the agent", not
retryable; ``INPUT_REQUIRED`` → ``agent_input_required`` and ``AUTH_REQUIRED`` →
``agent_auth_required``, neither retryable. Transport failures are classified by
:mod:`podium.agents.a2a.transport`.

When the call is cancelled (run aborted, lease lost, step timeout) or the agent's own
``timeout`` passes, the agent is asked to cancel the task (``CancelTask``, bounded by
``cancel_timeout``, completed even if the caller is cancelled again) before the cancellation
(or ``agent_timeout``) propagates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import httpx
from a2a.client import Client, ClientCallContext, ClientConfig, ClientFactory
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    Message,
    SendMessageRequest,
    SubscribeToTaskRequest,
    Task,
    TaskState,
)
from a2a.utils.errors import MethodNotFoundError, TaskNotFoundError, UnsupportedOperationError

from podium.agents.a2a.card import BINDINGS, card_to_proto, fetch_card_with
from podium.agents.a2a.results import (
    SETTLED,
    TaskTracker,
    a2a_ref,
    answer_message,
    build_message,
    completed_response,
    final_message,
    message_id,
    message_text,
    settled_error,
    state_name,
)
from podium.agents.a2a.transport import ConnectHook, HttpOptions, classify
from podium.agents.base import AgentContext, AgentError
from podium.domain.outcomes import ErrorCode
from podium.errors import LeaseLost

log = logging.getLogger(__name__)

ProgressHook = Callable[[AgentContext, dict[str, Any]], Awaitable[None]]
"""Called with ``{"taskId", "contextId", "state", "message"}`` for every non-settled state
the task reports while an attempt waits on it (stream events, or changes seen by polling)."""

# CancelTask requests that outlive a caller cancelled twice; kept so they are not collected
_cancelling: set[asyncio.Task[None]] = set()


@dataclass
class _Call:
    """What one attempt has learned about its task."""

    task_id: str | None = None
    context_id: str | None = None
    settled: bool = False  # the task reached a settled state: nothing to cancel
    poll_only: bool = False  # the agent cannot resubscribe: poll instead
    last_status: tuple[int, str] = (TaskState.TASK_STATE_UNSPECIFIED, "")


@dataclass(frozen=True)
class _Session:
    client: Client
    card: dict[str, Any]
    streaming: bool


class A2AAgent:
    """An :class:`~podium.agents.base.Agent` backed by a remote A2A agent.

    ``url`` is the agent's base URL (its card is at ``<url>/.well-known/agent-card.json``).
    ``card`` is a normalized card cached by the registry (see :mod:`podium.agents.a2a.card`);
    without one the card is fetched at the first call and kept. ``timeout`` (seconds) bounds
    each call besides the step's own timeout; passing it fails the attempt with
    ``agent_timeout``. ``transport``, ``connect_hook``, ``headers`` and ``request_timeout``
    shape every HTTP request (see :class:`~podium.agents.a2a.transport.HttpOptions`).
    ``poll_interval``/``max_poll_interval`` bound the ``GetTask`` backoff;
    ``reconnect_seconds`` is how long contact with a started task may be lost before the
    attempt fails with the transport's error; ``cancel_timeout`` bounds ``CancelTask``.
    """

    kind = "a2a"

    def __init__(
        self,
        slug: str,
        url: str,
        *,
        card: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        connect_hook: ConnectHook | None = None,
        headers: Mapping[str, str] | None = None,
        request_timeout: float = 30.0,
        poll_interval: float = 0.1,
        max_poll_interval: float = 2.0,
        reconnect_seconds: float = 30.0,
        cancel_timeout: float = 5.0,
        on_progress: ProgressHook | None = None,
    ) -> None:
        self.slug = slug
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.http = HttpOptions(
            transport=transport,
            connect_hook=connect_hook,
            headers=dict(headers or {}),
            request_timeout=request_timeout,
        )
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.reconnect_seconds = reconnect_seconds
        self.cancel_timeout = cancel_timeout
        self.on_progress = on_progress
        self._card: dict[str, Any] | None = dict(card) if card else None

    @property
    def card(self) -> dict[str, Any] | None:
        """The normalized card in use (None until fetched)."""
        return self._card

    @property
    def transport(self) -> httpx.AsyncBaseTransport | None:
        return self.http.transport

    @property
    def connect_hook(self) -> ConnectHook | None:
        return self.http.connect_hook

    async def refresh_card(self) -> dict[str, Any]:
        """Fetch the card again, keep it for the next calls and return it (errors as
        :func:`~podium.agents.a2a.card.fetch_card`)."""
        async with self.http.open() as http:
            self._card = await fetch_card_with(
                http, self.url, request_timeout=self.http.request_timeout
            )
        return self._card

    # -- the call -------------------------------------------------------------------------

    async def invoke(self, input: Any, context: AgentContext) -> dict[str, Any]:
        """Run one attempt of the step on the agent (module docstring) and return the
        normalized ``TaskResponse``, or raise :class:`~podium.agents.base.AgentError`."""
        started = time.perf_counter()
        call = _Call()
        scope = asyncio.timeout(self.timeout)
        try:
            async with scope:
                return await self._call(input, context, call, started)
        except TimeoutError as exc:
            if not scope.expired():
                raise
            raise AgentError(
                ErrorCode.AGENT_TIMEOUT,
                f"agent {self.slug!r} did not finish within its timeout of {self.timeout:g} s",
                retryable=True,
                details={
                    "timeoutSeconds": self.timeout,
                    "a2a": a2a_ref(call.task_id, call.context_id, state_name(call.last_status[0])),
                },
            ) from exc

    async def _call(
        self, input: Any, context: AgentContext, call: _Call, started: float
    ) -> dict[str, Any]:
        try:
            async with self.http.open() as http:
                session = await self._session(http)
                return await self._attempt(session, call, input, context, started)
        except (asyncio.CancelledError, LeaseLost):
            if call.task_id and not call.settled:
                await self._cancel_remote(call.task_id)
            raise
        except AgentError:
            raise
        except Exception as exc:
            raise classify(exc, url=self.url) from exc

    async def _session(self, http: httpx.AsyncClient) -> _Session:
        card = self._card
        if card is None:
            card = self._card = await fetch_card_with(
                http, self.url, request_timeout=self.http.request_timeout
            )
        streaming = bool((card.get("capabilities") or {}).get("streaming"))
        config = ClientConfig(
            httpx_client=http,
            streaming=streaming,
            # without streaming, SendMessage returns at once and the task is polled
            polling=not streaming,
            supported_protocol_bindings=list(BINDINGS),
        )
        return _Session(ClientFactory(config).create(card_to_proto(card)), card, streaming)

    async def _attempt(
        self, session: _Session, call: _Call, input: Any, context: AgentContext, started: float
    ) -> dict[str, Any]:
        task: Task | None = None
        saved = context.runtime.get("a2a")
        answer = saved.get("answer") if isinstance(saved, Mapping) else None
        if answer and self._may_reattach(saved, context):
            # a person answered the task's question (approval of kind input): send it
            # once on the same task, then follow the task on
            assert isinstance(saved, Mapping)
            call.task_id, call.context_id = str(saved["taskId"]), saved.get("contextId")
            task = await self._answer(session, call, answer, context)
        elif self._may_reattach(saved, context):
            assert isinstance(saved, Mapping)
            call.task_id, call.context_id = str(saved["taskId"]), saved.get("contextId")
            log.info("agent %s: re-attaching to task %s", self.slug, call.task_id)
            task = await self._follow(session, call, None, context, known=False)
            if task is None:
                log.info("agent %s does not know task %s: sending anew", self.slug, call.task_id)
                call.task_id = call.context_id = None
        if task is None:
            reply = await self._send(session, call, input, context)
            if isinstance(reply, Message):
                call.settled = True
                return completed_response(
                    slug=self.slug,
                    card_version=session.card.get("version"),
                    task=None,
                    message=reply,
                    started=started,
                    ended=time.perf_counter(),
                )
            task = reply
        call.settled = True
        if task.status.state == TaskState.TASK_STATE_COMPLETED:
            return completed_response(
                slug=self.slug,
                card_version=session.card.get("version"),
                task=task,
                message=None,
                started=started,
                ended=time.perf_counter(),
            )
        raise settled_error(task, slug=self.slug)

    def _may_reattach(self, saved: Any, context: AgentContext) -> bool:
        """Whether ``saved`` (``runtime.a2a``) names a task this very attempt started."""
        return (
            isinstance(saved, Mapping)
            and bool(saved.get("taskId"))
            and saved.get("agentUrl", self.url) == self.url
            and saved.get("generation", context.generation) == context.generation
            and saved.get("attempt", context.attempt) == context.attempt
        )

    def _unary(self) -> ClientCallContext:
        return ClientCallContext(timeout=self.http.request_timeout)

    # -- sending --------------------------------------------------------------------------

    async def _answer(
        self, session: _Session, call: _Call, answer: Mapping[str, Any], context: AgentContext
    ) -> Task:
        """Send a person's ``answer`` on task ``call.task_id`` with its deterministic
        ``messageId``, unless the task's history shows it arrived already (a worker died
        after sending it), and follow the task to its next settled state."""
        assert call.task_id is not None
        current = await session.client.get_task(
            GetTaskRequest(id=call.task_id), context=self._unary()
        )
        message_id = str(answer["messageId"])
        if any(m.message_id == message_id for m in current.history):
            log.info("agent %s: task %s has the answer already", self.slug, call.task_id)
            task = await self._follow(session, call, current, context, known=True)
            assert task is not None
            return task
        message = answer_message(answer, task_id=call.task_id, context_id=call.context_id)
        reply = await self._send(session, call, None, context, message=message)
        if isinstance(reply, Message):  # the agent answered without the task: follow it
            task = await self._follow(session, call, None, context, known=True)
            assert task is not None
            return task
        return reply

    async def _send(
        self,
        session: _Session,
        call: _Call,
        input: Any,
        context: AgentContext,
        *,
        message: Message | None = None,
    ) -> Task | Message:
        """Send the attempt's message (or ``message``); return the settled task or a
        message-only reply."""
        request = SendMessageRequest(message=message or build_message(input, context))
        tracker = TaskTracker()
        events = session.client.send_message(
            request, context=None if session.streaming else self._unary()
        )
        lost: Exception | None = None
        try:
            async with aclosing(events):  # type: ignore[type-var]  # the SDK returns an async generator typed as AsyncIterator
                async for event in events:
                    if event.HasField("message") and not tracker.task.id:
                        return event.message
                    tracker.apply(event)
                    if call.task_id is None and tracker.task.id:
                        call.task_id, call.context_id = tracker.task.id, tracker.task.context_id
                        await self._save(context, call)
                    await self._observe(context, call, tracker.task)
                    if tracker.settled:
                        break
        except (AgentError, LeaseLost):
            raise
        except Exception as exc:
            if call.task_id is None:
                raise
            # the task exists: lost contact is no reason to give it up (nor to send again)
            log.warning("agent %s: stream of task %s broke: %s", self.slug, call.task_id, exc)
            lost = exc
        if call.task_id is None:
            raise AgentError(
                ErrorCode.AGENT_EXECUTION_ERROR,
                f"agent {self.slug!r} answered the message with neither a task nor a message",
            )
        if tracker.settled and lost is None:
            # a streamed task is read back whole; a polled answer is the stored task already
            return await self._final(session, tracker.task) if session.streaming else tracker.task
        task = await self._follow(
            session, call, None if lost else tracker.task, context, known=True
        )
        assert task is not None  # known=True never answers None
        return task

    async def _save(self, context: AgentContext, call: _Call) -> None:
        """Record the task durably before waiting on it (raises LeaseLost when fenced)."""
        if context.save_runtime is None:
            return
        await context.save_runtime(
            "a2a",
            {
                "taskId": call.task_id,
                "contextId": call.context_id,
                "agentUrl": self.url,
                "agentSlug": self.slug,
                "messageId": message_id(context),
                "attempt": context.attempt,
                "generation": context.generation,
            },
        )

    # -- following ------------------------------------------------------------------------

    async def _follow(
        self,
        session: _Session,
        call: _Call,
        seen: Task | None,
        context: AgentContext,
        *,
        known: bool,
    ) -> Task | None:
        """Follow task ``call.task_id`` to a settled state and return it.

        ``seen`` is its latest known state (None: read it first). Unless ``known``, a task
        the agent does not know answers None. Lost contact is retried with backoff for
        ``reconnect_seconds``, then fails with the transport's error.
        """
        assert call.task_id is not None
        delay = self.poll_interval
        trouble_since: float | None = None
        while True:
            try:
                if seen is None:
                    seen = await session.client.get_task(
                        GetTaskRequest(id=call.task_id), context=self._unary()
                    )
                    known = True
                await self._observe(context, call, seen)
                if seen.status.state in SETTLED:
                    return seen
                if session.streaming and not call.poll_only:
                    settled = await self._subscribe(session, call, seen, context)
                    if settled is not None:
                        return await self._final(session, settled)
                trouble_since = None
            except TaskNotFoundError:
                if not known:
                    return None
                raise AgentError(
                    ErrorCode.AGENT_EXECUTION_ERROR,
                    f"agent {self.slug!r} lost task {call.task_id}",
                    retryable=True,
                    details={"a2a": a2a_ref(call.task_id, call.context_id, "UNKNOWN")},
                ) from None
            except (UnsupportedOperationError, MethodNotFoundError) as exc:
                if call.poll_only:  # not even GetTask: there is no way to follow the task
                    raise classify(exc, url=self.url) from exc
                # cannot resubscribe (or the task just settled): read it, then poll
                call.poll_only = True
                seen = None
                continue
            except AgentError:
                raise
            except Exception as exc:
                error = classify(exc, url=self.url)
                now = time.monotonic()
                trouble_since = trouble_since or now
                if not error.retryable or now - trouble_since >= self.reconnect_seconds:
                    raise error from exc
                log.warning("agent %s: following task %s: %s", self.slug, call.task_id, error)
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, self.max_poll_interval)
            seen = None

    async def _subscribe(
        self, session: _Session, call: _Call, seen: Task, context: AgentContext
    ) -> Task | None:
        """Stream the task's events until it settles (answered) or the stream ends (None)."""
        assert call.task_id is not None
        tracker = TaskTracker(seen)
        events = session.client.subscribe(SubscribeToTaskRequest(id=call.task_id))
        async with aclosing(events):  # type: ignore[type-var]  # an async generator typed as AsyncIterator
            async for event in events:
                tracker.apply(event)
                await self._observe(context, call, tracker.task)
                if tracker.settled:
                    return tracker.task
        return None

    async def _final(self, session: _Session, streamed: Task) -> Task:
        """The settled task as the agent stores it (all artifacts and history), or as the
        stream described it if it cannot be read."""
        try:
            stored = await session.client.get_task(
                GetTaskRequest(id=streamed.id), context=self._unary()
            )
        except Exception as exc:
            log.info("agent %s: reading settled task %s: %s", self.slug, streamed.id, exc)
            return streamed
        return stored if stored.status.state in SETTLED else streamed

    async def _observe(self, context: AgentContext, call: _Call, task: Task) -> None:
        """Note the task's state; report each new non-settled status to ``on_progress``."""
        status = task.status
        if status.state in SETTLED:
            call.settled = True
        seen = (status.state, status.message.message_id if status.HasField("message") else "")
        if seen == call.last_status:
            return
        call.last_status = seen
        if status.state in SETTLED:
            return
        said = final_message(task) if status.HasField("message") else None
        progress = {
            **a2a_ref(task.id, task.context_id, state_name(status.state)),
            "message": message_text(said) if said is not None else None,
        }
        if context.report_progress is not None and progress["message"]:
            # a WORKING update that says something: an orchestration.step.progress event
            await context.report_progress(
                {
                    "message": progress["message"],
                    "a2a": a2a_ref(task.id, task.context_id, progress["state"]),
                }
            )
        if self.on_progress is None:
            return
        try:
            await self.on_progress(context, progress)
        except Exception:
            log.exception("agent %s: progress hook failed", self.slug)

    # -- cancelling -----------------------------------------------------------------------

    async def _cancel_remote(self, task_id: str) -> None:
        """Ask the agent to cancel ``task_id``, waiting at most ``cancel_timeout``; if the
        caller is cancelled again meanwhile, the request still runs to its end."""
        request = asyncio.ensure_future(self._request_cancel(task_id))
        _cancelling.add(request)
        request.add_done_callback(_cancelling.discard)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(request)

    async def _request_cancel(self, task_id: str) -> None:
        try:
            async with asyncio.timeout(self.cancel_timeout), self.http.open() as http:
                session = await self._session(http)
                await session.client.cancel_task(CancelTaskRequest(id=task_id))
            log.info("agent %s: cancelled task %s", self.slug, task_id)
        except Exception as exc:
            log.warning("agent %s: could not cancel task %s: %s", self.slug, task_id, exc)
