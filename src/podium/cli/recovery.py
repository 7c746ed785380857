"""Manual recovery (spec section 8): ``podium retry|skip|abort RUN``, recorded with the
actor (``cli`` locally, the API key's name over ``--url``) and the note."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from podium.cli import render
from podium.cli.options import JsonOutput, json_option, retry_changes
from podium.cli.place import Place, with_place
from podium.client.backend import Recovery, resolve_step

if TYPE_CHECKING:
    from podium.service.views import ActionView

RunId = Annotated[
    str, typer.Argument(metavar="RUN", help="Run id, or a unique prefix of 8+ characters.")
]
Step = Annotated[
    str | None,
    typer.Option(
        "--step",
        metavar="STEP",
        help="The step: its id in the definition, or its stepRecordId. "
        "\\[default: the last failed step]",
    ),
]
Note = Annotated[
    str | None,
    typer.Option("--note", "--reason", help="Why, for the event log and the audit trail."),
]


def _report(view: ActionView, json_output: bool) -> None:
    if json_output:
        render.write_json(view)
        return
    step = f"step {view.stepId} of " if view.stepId else ""
    generation = f" (generation {view.generation})" if view.generation else ""
    done = {"retry": "retrying", "skip": "skipped", "abort": "aborted"}[view.action]
    render.plain(
        render.out(), f"{done} {step}run {view.runId}{generation}; the run is {view.runStatus}"
    )


@with_place()
def retry_command(
    run_id: RunId,
    step: Step = None,
    note: Note = None,
    delay: Annotated[
        float, typer.Option("--delay", min=0, metavar="SECONDS", help="Wait before retrying.")
    ] = 0.0,
    input_json: Annotated[
        str | None,
        typer.Option(
            "--input", metavar="JSON", help="Object merged into the step's input for the retry."
        ),
    ] = None,
    agent: Annotated[
        list[str] | None,
        typer.Option(
            "--agent",
            metavar="STEP=SLUG",
            help="Run STEP with another agent for this retry (repeatable).",
        ),
    ] = None,
    resume_child: Annotated[
        bool,
        typer.Option(
            "--resume-child",
            help="Orchestration step: retry its failed child run in place (no fresh child).",
        ),
    ] = False,
    json_output: JsonOutput = False,
    *,
    place: Place,
) -> None:
    """Run a failed step again, with a new generation; the run returns to running."""
    modifications = retry_changes(json_option(input_json, "--input"), agent)
    with place.backend() as backend:
        body = Recovery(
            step_record_id=resolve_step(backend, run_id, step),
            note=note,
            delay_seconds=delay,
            modifications=modifications,
            resume_child=resume_child,
        )
        view = backend.retry(run_id, body)
    _report(view, json_output)


@with_place()
def skip_command(
    run_id: RunId,
    step: Step = None,
    note: Note = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            metavar="JSON",
            help='Output the dependents see instead. \\[default: {"skipped": true}]',
        ),
    ] = None,
    json_output: JsonOutput = False,
    *,
    place: Place,
) -> None:
    """Mark a failed, pending or queued step skipped; its dependents proceed."""
    replacement = json_option(output, "--output")
    with place.backend() as backend:
        body = Recovery(
            step_record_id=resolve_step(backend, run_id, step),
            note=note,
            replacement_output=replacement,
        )
        view = backend.skip(run_id, body)
    _report(view, json_output)


@with_place()
def abort_command(
    run_id: RunId,
    note: Note = None,
    force: Annotated[
        bool, typer.Option("--force", help="Abort even while another action is in flight.")
    ] = False,
    json_output: JsonOutput = False,
    *,
    place: Place,
) -> None:
    """Abort a run: no new steps start and unfinished steps become aborted.

    Workers cancel the steps they are running. Refused while another recovery action is in
    flight on the run, unless --force."""
    with place.backend() as backend:
        view = backend.abort(run_id, Recovery(note=note, force=force))
    _report(view, json_output)
