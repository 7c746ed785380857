"""How a followed run ended: the summary line, its outputs, and one error line if it did
not complete. Shared by ``podium run`` and ``podium runs watch``."""

from __future__ import annotations

from typing import NoReturn

import typer

from podium.cli import render
from podium.service.views import RunDetail

EXIT_INTERRUPTED = 130


def exit_code(detail: RunDetail) -> int:
    """0 when the run completed, 1 when it failed or was aborted."""
    return 0 if detail.run.status == "completed" else 1


def report_result(detail: RunDetail) -> None:
    run, out = detail.run, render.out()
    retries = sum(max(render.attempts_made(step) - 1, 0) for step in detail.steps)
    duration = render.format_duration(render.run_duration(run, render.now_utc()))
    summary = f"{len(detail.steps)} steps, {retries} retr{'y' if retries == 1 else 'ies'}"
    out.print(
        render.status_text(run.status),
        f"run {run.id} ({render.run_label(run)}) in {duration} ({summary})",
        soft_wrap=True,
        markup=False,
    )
    if run.outputs is not None:
        render.plain(out, "outputs:")
        render.print_json_value(out, run.outputs)
    if run.status == "failed":
        error = render.run_error_text(run.error or {})
        render.plain(render.err(), f"error: run {run.id} failed: {error}")
    elif run.status == "aborted":
        render.plain(render.err(), f"error: run {run.id} was aborted")


def finish(detail: RunDetail | None, *, json_output: bool, interrupted: str) -> NoReturn:
    """Print the end of a followed run and exit with its code; ``interrupted`` is printed
    (after ``interrupted: ``) when following stopped before the run ended."""
    if detail is None:
        render.plain(render.err(), f"interrupted: {interrupted}")
        raise typer.Exit(EXIT_INTERRUPTED)
    if json_output:
        render.write_json(detail)
    else:
        report_result(detail)
    raise typer.Exit(exit_code(detail))
