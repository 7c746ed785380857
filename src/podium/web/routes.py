"""The operator dashboard (spec section 17): server-rendered pages and plain forms.

Every page is HTML rendered on the server from the same service functions the API and the CLI
use, so it shows exactly what they show, scoped to the caller's organization. Every action is
a form that POSTs, carries a CSRF token, and answers with a 303 redirect back to the page with
a notice, so each works with JavaScript disabled. ``static/podium.js`` (no build step) makes
the pages live through the run's SSE stream and, where no stream runs (an ended run, the
runs list), the long poll of ``live.py``.

Callers: with API keys required, a sign-in form takes a key and sets a session cookie; the
key is never stored in the browser. Keyless loopback mode needs no sign-in. Viewers see no
mutating buttons, and the service functions refuse them anyway.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from podium import __version__
from podium.domain.limits import readable_json
from podium.errors import InvalidInput, PodiumError, Unauthorized
from podium.service import agents as agent_service
from podium.service import approvals as approval_service
from podium.service import definitions as definition_service
from podium.service import diagnostics as diagnostics_service
from podium.service import recovery, runs
from podium.service import webhooks as webhook_service
from podium.service.actors import ROLE_RANK, Actor
from podium.storage.records import EventRecord
from podium.storage.store import SqlStore
from podium.web import dag, live
from podium.web.forms import json_field, number_field, optional, overrides_field, parse_form
from podium.web.session import COOKIE, SESSION_SECONDS, Session, SessionCodec

HERE = Path(__file__).parent
STATIC = HERE / "static"
CSP = (
    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
RUN_STATUSES = ("planning", "running", "checkpoint", "completed", "failed", "aborted")
LIFECYCLES = ("all", "active", "completed")
# The run page's event log shows the last EVENTS_SHOWN events (``?events=all``: all of the
# first EVENTS_READ, which also give each step its history).
EVENTS_SHOWN = 200
EVENTS_READ = 5000
# the runs list's live updates wait on every run of a page (see live.py)
RUNS_PAGE = live.MOVED_RUNS

router = APIRouter(include_in_schema=False)
router.include_router(live.router)  # first: /runs/moved is not a run page

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters["pretty"] = lambda value: json.dumps(value, indent=2, default=str)
templates.filters["short"] = lambda run_id: str(run_id)[:13]


def brief(data: Any, limit: int = 160) -> str:
    """``data`` as one line of compact JSON, cut to ``limit`` characters as the page's
    script cuts the events it adds. A value too deep to serialise is shown with its deep
    parts replaced by a truncation marker, as the API shows it."""
    try:
        text = json.dumps(data, default=str)
    except (ValueError, RecursionError):
        text = json.dumps(readable_json(data), default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


templates.filters["brief"] = brief


def clock(moment: datetime) -> str:
    """The time of day to the millisecond, as the event log shows it."""
    m = moment
    return f"{m.hour:02d}:{m.minute:02d}:{m.second:02d}.{m.microsecond // 1000:03d}"


def history_entry(event: EventRecord) -> Markup:
    """One line of a step's history: when, what happened, the attempt, the progress message
    and the error's code, as far as the event says. (A filter, not template code: a run of
    500 steps has 1,500 of these.)"""
    data = event.data
    line = event.type.rsplit(".", 1)[-1]
    if data.get("attempt"):
        line += f" · attempt {data['attempt']}"
    if data.get("message"):
        line += f" · {data['message']}"
    error = data.get("error")
    if error:
        line += f" · {error.get('code') if isinstance(error, dict) else error}"
    return Markup("<time>%s</time> %s") % (clock(event.timestamp), line)


templates.filters["clock"] = clock
templates.filters["history_entry"] = history_entry


class SignInRequired(Exception):
    """A page was asked for without a session while keys are required."""


def _store(request: Request) -> SqlStore:
    store: SqlStore = request.app.state.store
    return store


def _sessions(request: Request) -> SessionCodec:
    codec: SessionCodec = request.app.state.sessions
    return codec


def _actor(request: Request) -> Actor:
    actor: Actor | None = getattr(request.state, "actor", None)
    if actor is None:
        raise SignInRequired
    return actor


def _session(request: Request) -> Session | None:
    return _sessions(request).read(request.cookies.get(COOKIE))


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page: ``template`` with the caller, their CSRF token and the page's notice."""
    actor: Actor | None = getattr(request.state, "actor", None)
    session = _session(request)
    html = templates.get_template(template).render(
        actor=actor,
        can_operate=actor is not None and ROLE_RANK[actor.role] >= ROLE_RANK["operator"],
        signed_in=session is not None and actor is not None,
        csrf=_sessions(request).csrf_token(session),
        notice=request.query_params.get("notice"),
        notice_kind=request.query_params.get("kind", "info"),
        version=__version__,
        path=request.url.path,
        **context,
    )
    return HTMLResponse(html, status_code=status, headers=page_headers())


def page_headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


async def page(request: Request, template: str, load: Callable[[], dict[str, Any]]) -> Response:
    """Render ``template`` with what ``load`` (run in a thread) returns; an error (another
    organization's run: not found) becomes an error page with its status."""
    try:
        context = await anyio.to_thread.run_sync(load)
    except PodiumError as exc:
        return render(request, "error.html", status=exc.status, message=problem_text(exc))
    return render(request, template, **context)


def back(path: str, notice: str, *, kind: str = "info") -> RedirectResponse:
    """303 to ``path`` with a notice (``kind``: ``info`` or ``error``)."""
    sep = "&" if "?" in path else "?"
    return RedirectResponse(f"{path}{sep}{urlencode({'notice': notice, 'kind': kind})}", 303)


def problem_text(exc: PodiumError) -> str:
    """One line for a notice: the error and, for invalid input, each issue with its field."""
    if isinstance(exc, InvalidInput) and exc.issues:
        return exc.message + ": " + "; ".join(str(i) for i in exc.issues)
    return exc.message


async def form_of(request: Request) -> dict[str, str]:
    """The posted form, after its CSRF token was checked (:class:`InvalidInput` if not)."""
    form = parse_form(await request.body())
    if not _sessions(request).check_csrf(_session(request), form.get("csrf")):
        raise InvalidInput("the form has expired or was not sent by this dashboard: reload")
    return form


# -- runs -------------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
async def runs_page(request: Request) -> Response:
    """The runs list: filters by status, lifecycle, definition and text, keyset pages."""
    actor = _actor(request)
    q = request.query_params
    status = [s for s in q.getlist("status") if s in RUN_STATUSES]
    lifecycle = q.get("lifecycle", "all") if q.get("lifecycle") in LIFECYCLES else "all"
    filters = {
        "status": status,
        "lifecycle": lifecycle,
        "definition": q.get("definition") or "",
        "search": q.get("search") or "",
    }

    def load() -> dict[str, Any]:
        found = runs.list_runs(
            _store(request),
            actor,
            status=status,
            lifecycle=lifecycle,
            definition=q.get("definition") or None,
            search=q.get("search") or None,
            cursor=q.get("cursor") or None,
            limit=RUNS_PAGE,
        )
        next_query = None
        if found.nextCursor:
            kept = [(k, v) for k, v in q.multi_items() if k not in ("cursor", "notice", "kind")]
            next_query = urlencode([*kept, ("cursor", found.nextCursor)])
        return {
            "page": found,
            "filters": filters,
            "statuses": RUN_STATUSES,
            "lifecycles": LIFECYCLES,
            "next_query": next_query,
        }

    return await page(request, "runs.html", load)


@router.get("/runs/{run_id}", response_class=HTMLResponse)
async def run_page(request: Request, run_id: str) -> Response:
    """A run: its DAG (every step of the definition), steps with details, the event log,
    parent and children, and the recovery forms."""
    actor = _actor(request)
    every_event = request.query_params.get("events") == "all"

    def load() -> dict[str, Any]:
        store = _store(request)
        detail = runs.detail(store, actor, run_id)  # scoped: another organization's is 404
        definition = store.definition_of(detail.run.id)
        shape = [(s.id, list(s.depends_on)) for s in definition.orchestration.steps]
        statuses = {s.stepId: s.status for s in detail.steps}
        # the records, not their API views: the page shows a few members of each event's
        # data (brief() guards the rest), and a 500-step run has 1,500 events
        log = store.events_after(detail.run.id, 0, EVENTS_READ)
        history: dict[str, list[EventRecord]] = {}
        for e in log:  # each step's own events: attempts, retries, progress messages
            if e.step_record_id is not None:
                history.setdefault(e.step_record_id, []).append(e)
        if every_event or len(log) <= EVENTS_SHOWN:
            shown = log
        elif len(log) < EVENTS_READ:
            shown = log[-EVENTS_SHOWN:]
        else:  # the log goes on past what was read: its last events
            last = detail.run.lastSequence
            shown = store.events_after(detail.run.id, last - EVENTS_SHOWN, EVENTS_SHOWN)
        return {
            "detail": detail,
            "svg": dag.svg(dag.layout(shape), statuses),
            "events": shown,
            "earlier_events": (shown[0].sequence - 1) if shown else 0,
            "history": history,
            "failed_steps": [s for s in detail.steps if s.status == "failed"],
            "skippable": [
                s for s in detail.steps if s.status in ("failed", "pending", "checkpoint_pending")
            ],
        }

    return await page(request, "run.html", load)


@router.post("/runs/{run_id}/actions/{action}")
async def run_action(request: Request, run_id: str, action: str) -> Response:
    """Retry, skip or abort from the run page; a refusal (409 in the API) comes back as a
    notice naming what is in the way."""
    actor = _actor(request)
    page = f"/runs/{run_id}"
    try:
        form = await form_of(request)
        note = optional(form, "note")
        store = _store(request)
        if action == "retry":
            modifications: dict[str, Any] = {}
            changes = json_field(form, "input", require_object=True)
            if changes is not None:
                modifications["input"] = changes
            overrides = overrides_field(form, "agentOverrides")
            if overrides is not None:
                modifications["agentOverrides"] = overrides
            delay = number_field(form, "delaySeconds") or 0.0
            result = await anyio.to_thread.run_sync(
                lambda: recovery.retry(
                    store,
                    actor,
                    run_id,
                    step_record_id=optional(form, "stepRecordId"),
                    note=note,
                    delay_seconds=delay,
                    modifications=modifications or None,
                )
            )
        elif action == "skip":
            replacement = json_field(form, "replacementOutput")
            result = await anyio.to_thread.run_sync(
                lambda: recovery.skip(
                    store,
                    actor,
                    run_id,
                    step_record_id=optional(form, "stepRecordId"),
                    note=note,
                    replacement_output=replacement,
                )
            )
        elif action == "abort":
            result = await anyio.to_thread.run_sync(
                lambda: recovery.abort(store, actor, run_id, note=note)
            )
        else:
            return back(page, f"unknown action {action!r}", kind="error")
    except PodiumError as exc:
        return back(page, f"{action} refused: {problem_text(exc)}", kind="error")
    target = f" of step {result.stepId}" if getattr(result, "stepId", None) else ""
    return back(page, f"{action}{target} accepted")


# -- approvals --------------------------------------------------------------------------------

DECISIONS = ("continue", "retry", "abort", "respond")


@router.get("/approvals", response_class=HTMLResponse)
async def approvals_page(request: Request) -> Response:
    """The approvals inbox: the organization's pending approvals with the step output to
    review, and a form per approval to continue, retry with changes, abort or respond."""
    actor = _actor(request)
    cursor = request.query_params.get("cursor") or None
    return await page(
        request,
        "approvals.html",
        lambda: {
            "page": approval_service.list_approvals(_store(request), actor, cursor=cursor, limit=50)
        },
    )


@router.post("/approvals/{approval_id}/decision")
async def approval_decision(request: Request, approval_id: str) -> Response:
    """Decide one approval from the inbox; a decision already taken (409 in the API) comes
    back as a notice that names it."""
    actor = _actor(request)
    inbox = "/approvals"
    try:
        form = await form_of(request)
        decision = form.get("decision", "")
        if decision not in DECISIONS:
            raise InvalidInput(f"unknown decision {decision!r}")
        modifications: dict[str, Any] = {}
        changes = json_field(form, "input", require_object=True)
        if changes is not None:
            modifications["input"] = changes
        overrides = overrides_field(form, "agentOverrides")
        if overrides is not None:
            modifications["agentOverrides"] = overrides
        response = None
        if decision == "respond":
            response = {"text": optional(form, "response") or ""}
            data = json_field(form, "data")
            if data is not None:
                response["data"] = data
        await anyio.to_thread.run_sync(
            lambda: approval_service.decide(
                _store(request),
                actor,
                approval_id,
                decision=decision,
                note=optional(form, "note"),
                modifications=modifications or None,
                response=response,
            )
        )
    except PodiumError as exc:
        return back(inbox, f"{problem_text(exc)}", kind="error")
    return back(inbox, f"{decision}: approval {approval_id[:13]} decided")


# -- webhooks and the doctor ------------------------------------------------------------------


@router.get("/webhooks", response_class=HTMLResponse)
async def webhooks_page(request: Request) -> Response:
    """Endpoints with their health, and the dead-letter queue with replay."""
    actor = _actor(request)

    def load() -> dict[str, Any]:
        webhooks = _store(request).webhooks
        return {
            "endpoints": webhook_service.list_endpoints(webhooks, actor),
            "dead": webhook_service.list_deliveries(webhooks, actor, status="dead"),
            "can_replay": ROLE_RANK[actor.role] >= ROLE_RANK["admin"],
        }

    return await page(request, "webhooks.html", load)


@router.post("/webhooks/deliveries/{delivery_id}/replay")
async def webhook_replay(request: Request, delivery_id: str) -> Response:
    """Send a dead letter again (same ``webhook-id``, signed anew)."""
    actor = _actor(request)
    try:
        await form_of(request)
        await anyio.to_thread.run_sync(
            lambda: webhook_service.replay(_store(request).webhooks, actor, delivery_id)
        )
    except PodiumError as exc:
        return back("/webhooks", f"replay refused: {problem_text(exc)}", kind="error")
    return back("/webhooks", f"delivery {delivery_id[:13]} queued again")


@router.get("/doctor", response_class=HTMLResponse)
async def doctor_page(request: Request) -> Response:
    """``podium doctor``'s findings, grouped by runbook section, with links to what they
    name and the command that fixes each."""
    actor = _actor(request)

    def load() -> dict[str, Any]:
        report = diagnostics_service.diagnostics(_store(request), actor, request.app.state.settings)
        sections: dict[str, list[Any]] = {}
        for finding in report.findings:
            sections.setdefault(finding.section_title, []).append(finding)
        return {"sections": sorted(sections.items()), "report": report}

    return await page(request, "doctor.html", load)


# -- agents and definitions -------------------------------------------------------------------


@router.get("/agents", response_class=HTMLResponse)
async def agents_page(request: Request) -> Response:
    """The agent registry with cards and health, and the routing rules in force."""
    actor = _actor(request)

    def load() -> dict[str, Any]:
        store = _store(request)
        policy = agent_service.get_policy(store, actor)
        return {"agents": agent_service.list_agents(store, actor), "policy": policy}

    return await page(request, "agents.html", load)


@router.get("/definitions", response_class=HTMLResponse)
async def definitions_page(request: Request) -> Response:
    actor = _actor(request)
    return await page(
        request,
        "definitions.html",
        lambda: {"definitions": definition_service.list_definitions(_store(request), actor)},
    )


@router.get("/definitions/{name}", response_class=HTMLResponse)
async def definition_page(request: Request, name: str) -> Response:
    """One definition: its versions, the chosen version's YAML and its validation."""
    actor = _actor(request)
    version = request.query_params.get("version") or None

    def load() -> dict[str, Any]:
        import yaml

        store = _store(request)
        shown = definition_service.show(store, actor, name, version)
        document = yaml.safe_dump(shown.document, sort_keys=False) if shown.document else ""
        versions = [s for s in definition_service.list_definitions(store, actor) if s.name == name]
        validation = definition_service.validate(document)
        return {
            "definition": shown,
            "yaml": document,
            "versions": versions[0].versions if versions else [],
            "validation": validation,
        }

    return await page(request, "definition.html", load)


@router.post("/definitions/{name}/versions/{version}/{change}")
async def definition_change(request: Request, name: str, version: str, change: str) -> Response:
    actor = _actor(request)
    page = f"/definitions/{name}?{urlencode({'version': version})}"
    status = {"activate": "active", "deactivate": "inactive"}.get(change)
    if status is None:
        return back(page, f"unknown change {change!r}", kind="error")
    try:
        await form_of(request)
        await anyio.to_thread.run_sync(
            lambda: definition_service.set_status(_store(request), actor, name, version, status)
        )
    except PodiumError as exc:
        return back(page, f"{change} refused: {problem_text(exc)}", kind="error")
    return back(page, f"{name}@{version} is {status}")


# -- sign-in ----------------------------------------------------------------------------------


@router.get("/signin", response_class=HTMLResponse)
async def signin_page(request: Request) -> Response:
    return render(request, "signin.html", required=request.app.state.keys_required)


@router.post("/signin")
async def signin(request: Request) -> Response:
    """Exchange an API key for a session cookie (the key itself is not kept)."""
    from podium.api.auth import authenticate

    form = parse_form(await request.body())
    key = form.get("key", "").strip()
    try:
        actor = await anyio.to_thread.run_sync(authenticate, _store(request), f"Bearer {key}")
    except Unauthorized as exc:
        return back("/signin", exc.message, kind="error")
    assert actor.key_id is not None
    response = RedirectResponse("/", 303)
    response.set_cookie(
        COOKIE,
        _sessions(request).issue(actor.key_id),
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/signout")
async def signout(request: Request) -> Response:
    response = back("/signin", "signed out")
    response.delete_cookie(COOKIE, path="/")
    return response


def sign_in_redirect(request: Request, exc: Exception) -> Response:
    """Handler of :class:`SignInRequired`: to the sign-in page."""
    return RedirectResponse("/signin", 303)
