"""``podium approvals list|show|approve|retry|abort|respond``: the inbox of human checkpoints
(spec section 5), on the local database or a server (``--url``), recorded with the actor
(``cli`` locally, the API key's name over HTTP)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import typer
from rich.table import Table

from podium.cli import render
from podium.cli.options import (
    ApiKey,
    DatabaseUrl,
    JsonOutput,
    ServerUrl,
    open_backend,
    split_assignment,
)

# The service, the client and the views are imported when a command runs, so that
# `podium approvals ... --help` answers without SQLAlchemy, httpx or pydantic.
if TYPE_CHECKING:
    from podium.client.backend import Backend
    from podium.client.local import LocalBackend
    from podium.client.remote import RemoteBackend
    from podium.service.approvals import ApprovalView, DecisionView
    from podium.service.views import Page

app = typer.Typer(help="Human checkpoints waiting for a decision.", no_args_is_help=True)

ApprovalId = Annotated[str, typer.Argument(metavar="APPROVAL", help="The approvalId.")]
Note = Annotated[str | None, typer.Option("--note", help="Why, for the audit trail.")]


class Inbox(Protocol):
    def list(self, **filters: Any) -> Page[ApprovalView]: ...

    def show(self, approval_id: str) -> ApprovalView: ...

    def decide(self, approval_id: str, body: dict[str, Any]) -> DecisionView: ...


class LocalInbox:
    def __init__(self, backend: LocalBackend) -> None:
        self.store, self.actor = backend.store, backend.actor

    def list(self, **filters: Any) -> Page[ApprovalView]:
        from podium.service import approvals

        return approvals.list_approvals(self.store, self.actor, **filters)

    def show(self, approval_id: str) -> ApprovalView:
        from podium.service import approvals

        return approvals.show(self.store, self.actor, approval_id)

    def decide(self, approval_id: str, body: dict[str, Any]) -> DecisionView:
        from podium.service import approvals

        view, _ = approvals.decide(self.store, self.actor, approval_id, **body)
        return view


class RemoteInbox:
    PATH = "/api/orchestrations/approvals"

    def __init__(self, backend: RemoteBackend) -> None:
        self.remote = backend

    def list(self, **filters: Any) -> Page[ApprovalView]:
        from podium.service.approvals import ApprovalView
        from podium.service.views import Page

        names = {"run_id": "runId"}
        params = {names.get(k, k): v for k, v in filters.items() if v is not None}
        # not _get(**params): a filter is named ``kind``, as is _get's first parameter
        response = self.remote._request("GET", self.PATH, params=params)
        return self.remote._parse(Page[ApprovalView], response)

    def show(self, approval_id: str) -> ApprovalView:
        from podium.service.approvals import ApprovalView

        return self.remote._get(ApprovalView, f"{self.PATH}/{approval_id}")

    def decide(self, approval_id: str, body: dict[str, Any]) -> DecisionView:
        from podium.service.approvals import DecisionView

        payload = {k: v for k, v in body.items() if v is not None}
        return self.remote._post(DecisionView, f"{self.PATH}/{approval_id}/decision", payload)


def inbox(backend: Backend) -> Inbox:
    from podium.client.local import LocalBackend
    from podium.client.remote import RemoteBackend

    if isinstance(backend, RemoteBackend):
        return RemoteInbox(backend)
    assert isinstance(backend, LocalBackend)
    return LocalInbox(backend)


def deciding_command(approval: ApprovalView) -> str:
    """The command that decides ``approval`` (as ``podium run`` prints it)."""
    line = render.approval_line({"approvalId": approval.approvalId, "kind": approval.kind})
    return line.partition("decide: ")[2]


@app.command("list")
def list_command(
    status: Annotated[
        list[str] | None,
        typer.Option("--status", "-s", help="pending (default), approved, rejected, expired, all."),
    ] = None,
    run: Annotated[str | None, typer.Option("--run", help="Only approvals of this run.")] = None,
    definition: Annotated[
        str | None, typer.Option("--definition", "-d", help="Only this definition's.")
    ] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="checkpoint or input.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=200)] = 20,
    cursor: Annotated[str | None, typer.Option("--cursor", help="Its nextCursor.")] = None,
    url: ServerUrl = None,
    api_key: ApiKey = None,
    database_url: DatabaseUrl = None,
    json_output: JsonOutput = False,
) -> None:
    """Approvals newest first (pending ones unless --status says otherwise)."""
    with open_backend(url=url, api_key=api_key, database_url=database_url) as backend:
        page = inbox(backend).list(
            status=status or None,
            run_id=run,
            definition=definition,
            kind=kind,
            cursor=cursor,
            limit=limit,
        )
    if json_output:
        render.write_json(page)
        return
    out = render.out()
    if not page.items:
        render.plain(out, "no approvals")
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for name in ("approval", "run", "step", "kind", "status", "question", "expires"):
        table.add_column(name, no_wrap=name != "question", overflow="fold")
    for a in page.items:
        table.add_row(
            a.approvalId,
            a.runId[:8],
            a.stepId or "",
            a.kind,
            render.status_text(a.status),
            a.question,
            render.format_datetime(a.expiresAt) if a.expiresAt else "-",
        )
    out.print(table)
    if page.nextCursor:
        render.plain(out, f"more: --cursor {page.nextCursor}")


@app.command("show")
def show_command(
    approval_id: ApprovalId,
    url: ServerUrl = None,
    api_key: ApiKey = None,
    database_url: DatabaseUrl = None,
    json_output: JsonOutput = False,
) -> None:
    """One approval: its question, options, the step's output and the decision."""
    with open_backend(url=url, api_key=api_key, database_url=database_url) as backend:
        a = inbox(backend).show(approval_id)
    if json_output:
        render.write_json(a)
        return
    out = render.out()
    lines = [
        f"approval {a.approvalId} ({a.kind}) is {a.status}",
        f"run {a.runId}, step {a.stepId}, definition {a.definition}",
        f"question: {a.question}",
        f"options: {', '.join(a.options)}; on timeout: {a.onTimeout}"
        + (f" at {render.format_datetime(a.expiresAt)}" if a.expiresAt else ""),
    ]
    if a.stepOutput is not None:
        lines.append(f"output: {render.short_json(render.step_output_value(a.stepOutput), 300)}")
    if a.decision:
        when = render.format_datetime(a.decidedAt)
        lines.append(f"decided: {a.decision} by {a.decidedBy} at {when}")
        if a.note:
            lines.append(f"note: {a.note}")
    elif a.status == "pending":
        lines.append(f"decide: {deciding_command(a)}")
    for line in lines:
        render.plain(out, line)


def _decide(
    approval_id: str,
    body: dict[str, Any],
    *,
    url: str | None,
    api_key: str | None,
    database_url: str | None,
    json_output: bool,
) -> None:
    with open_backend(url=url, api_key=api_key, database_url=database_url) as backend:
        view = inbox(backend).decide(approval_id, body)
    if json_output:
        render.write_json(view)
        return
    a = view.approval
    render.plain(
        render.out(),
        f"{a.decision}: approval {a.approvalId} is {a.status}; "
        f"step {a.stepId} is {view.stepStatus}, the run is {view.runStatus}",
    )


def _value(text: str) -> Any:
    """``--set`` values are JSON when they parse as JSON, else text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


@app.command("approve")
def approve_command(
    approval_id: ApprovalId,
    note: Note = None,
    url: ServerUrl = None,
    api_key: ApiKey = None,
    database_url: DatabaseUrl = None,
    json_output: JsonOutput = False,
) -> None:
    """Continue: the step completes with its output and its dependents run."""
    _decide(
        approval_id,
        {"decision": "continue", "note": note},
        url=url,
        api_key=api_key,
        database_url=database_url,
        json_output=json_output,
    )


@app.command("retry")
def retry_command(
    approval_id: ApprovalId,
    note: Note = None,
    assignments: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="KEY=VALUE", help="Change the step's input (repeatable)."),
    ] = None,
    agent: Annotated[
        list[str] | None,
        typer.Option("--agent", metavar="STEP=SLUG", help="Another agent for the retry."),
    ] = None,
    url: ServerUrl = None,
    api_key: ApiKey = None,
    database_url: DatabaseUrl = None,
    json_output: JsonOutput = False,
) -> None:
    """Run the step again (new generation), optionally with input changes or another agent."""
    modifications: dict[str, Any] = {}
    if assignments:
        pairs = [split_assignment(a, "--set", "KEY=VALUE") for a in assignments]
        modifications["input"] = {k: _value(v) for k, v in pairs}
    if agent:
        modifications["agentOverrides"] = dict(
            split_assignment(a, "--agent", "STEP=SLUG") for a in agent
        )
    _decide(
        approval_id,
        {"decision": "retry", "note": note, "modifications": modifications or None},
        url=url,
        api_key=api_key,
        database_url=database_url,
        json_output=json_output,
    )


@app.command("abort")
def abort_command(
    approval_id: ApprovalId,
    note: Note = None,
    url: ServerUrl = None,
    api_key: ApiKey = None,
    database_url: DatabaseUrl = None,
    json_output: JsonOutput = False,
) -> None:
    """Reject: the run is aborted."""
    _decide(
        approval_id,
        {"decision": "abort", "note": note},
        url=url,
        api_key=api_key,
        database_url=database_url,
        json_output=json_output,
    )


app.command("reject", help="Reject: the run is aborted (same as abort).")(abort_command)


@app.command("respond")
def respond_command(
    approval_id: ApprovalId,
    text: Annotated[str | None, typer.Option("--text", help="The answer's text.")] = None,
    data: Annotated[
        str | None, typer.Option("--data", metavar="JSON", help="A structured answer.")
    ] = None,
    note: Note = None,
    url: ServerUrl = None,
    api_key: ApiKey = None,
    database_url: DatabaseUrl = None,
    json_output: JsonOutput = False,
) -> None:
    """Answer an agent that asked for input; it continues on the same task."""
    response: dict[str, Any] = {}
    if text is not None:
        response["text"] = text
    if data is not None:
        try:
            response["data"] = json.loads(data)
        except ValueError as exc:
            raise typer.BadParameter(f"not JSON: {exc}", param_hint="'--data'") from None
    _decide(
        approval_id,
        {"decision": "respond", "note": note, "response": response or None},
        url=url,
        api_key=api_key,
        database_url=database_url,
        json_output=json_output,
    )
