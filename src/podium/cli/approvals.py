"""``podium approvals list|show|approve|retry|abort|respond``: the inbox of human checkpoints
(spec section 5), on the local database or a server (``--url``), recorded with the actor
(``cli`` locally, the API key's name over HTTP)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from podium.cli import render
from podium.cli.options import (
    JsonOutput,
    json_option,
    json_or_text,
    retry_changes,
    split_assignment,
)
from podium.cli.place import Place, with_place

# The client and the views are imported when a command runs, so that `podium approvals ...
# --help` answers without SQLAlchemy, httpx or pydantic.
if TYPE_CHECKING:
    from podium.client.backend import Decision
    from podium.service.approvals import ApprovalView

app = typer.Typer(help="Human checkpoints waiting for a decision.", no_args_is_help=True)

ApprovalId = Annotated[str, typer.Argument(metavar="APPROVAL", help="The approvalId.")]
Note = Annotated[str | None, typer.Option("--note", help="Why, for the audit trail.")]


def deciding_command(approval: ApprovalView) -> str:
    """The command that decides ``approval`` (as ``podium run`` prints it)."""
    line = render.approval_line({"approvalId": approval.approvalId, "kind": approval.kind})
    return line.partition("decide: ")[2]


@app.command("list")
@with_place()
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
    json_output: JsonOutput = False,
    *,
    place: Place,
) -> None:
    """Approvals newest first (pending ones unless --status says otherwise)."""
    from podium.client.backend import ApprovalFilter

    filters = ApprovalFilter(
        status=status or [],
        run_id=run,
        definition=definition,
        kind=kind,
        cursor=cursor,
        limit=limit,
    )
    with place.backend() as backend:
        page = backend.list_approvals(filters)
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
@with_place()
def show_command(approval_id: ApprovalId, json_output: JsonOutput = False, *, place: Place) -> None:
    """One approval: its question, options, the step's output and the decision."""
    with place.backend() as backend:
        a = backend.show_approval(approval_id)
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


def _decide(place: Place, approval_id: str, decision: Decision, json_output: bool) -> None:
    """Take ``decision`` on the approval and say what became of it."""
    with place.backend() as backend:
        view = backend.decide_approval(approval_id, decision)
    if json_output:
        render.write_json(view)
        return
    a = view.approval
    render.plain(
        render.out(),
        f"{a.decision}: approval {a.approvalId} is {a.status}; "
        f"step {a.stepId} is {view.stepStatus}, the run is {view.runStatus}",
    )


def _deciding(decision: str) -> Callable[..., None]:
    """``approve`` and ``abort``: one command, but for the decision it takes."""

    @with_place()
    def command(
        approval_id: ApprovalId,
        note: Note = None,
        json_output: JsonOutput = False,
        *,
        place: Place,
    ) -> None:
        from podium.client.backend import Decision

        _decide(place, approval_id, Decision(decision, note=note), json_output)

    return command


approve_command = app.command(
    "approve", help="Continue: the step completes with its output and its dependents run."
)(_deciding("continue"))
abort_command = app.command("abort", help="Reject: the run is aborted.")(_deciding("abort"))
app.command("reject", help="Reject: the run is aborted (same as abort).")(abort_command)


@app.command("retry")
@with_place()
def retry_command(
    approval_id: ApprovalId,
    note: Note = None,
    assignments: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Change the step's input (repeatable; VALUE is JSON when it parses).",
        ),
    ] = None,
    agent: Annotated[
        list[str] | None,
        typer.Option("--agent", metavar="STEP=SLUG", help="Another agent for the retry."),
    ] = None,
    json_output: JsonOutput = False,
    *,
    place: Place,
) -> None:
    """Run the step again (new generation), optionally with input changes or another agent."""
    from podium.client.backend import Decision

    pairs = [split_assignment(a, "--set", "KEY=VALUE") for a in assignments or []]
    changed = {k: json_or_text(v) for k, v in pairs} or None
    chosen = Decision("retry", note=note, modifications=retry_changes(changed, agent))
    _decide(place, approval_id, chosen, json_output)


@app.command("respond")
@with_place()
def respond_command(
    approval_id: ApprovalId,
    text: Annotated[str | None, typer.Option("--text", help="The answer's text.")] = None,
    data: Annotated[
        str | None, typer.Option("--data", metavar="JSON", help="A structured answer.")
    ] = None,
    note: Note = None,
    json_output: JsonOutput = False,
    *,
    place: Place,
) -> None:
    """Answer an agent that asked for input; it continues on the same task."""
    from podium.client.backend import Decision

    answer: dict[str, Any] = {"text": text, "data": json_option(data, "--data")}
    response = {k: v for k, v in answer.items() if v is not None} or None
    _decide(place, approval_id, Decision("respond", note=note, response=response), json_output)
