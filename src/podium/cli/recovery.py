"""Manual recovery commands (spec section 8): ``podium abort RUN``."""

from __future__ import annotations

from typing import Annotated

import typer

from podium.cli import render
from podium.cli.options import DatabaseUrl, JsonOutput, open_store, settings_for

ACTOR = "cli"


def abort_command(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="Run id.")],
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why, for the event log and audit trail.")
    ] = None,
    database_url: DatabaseUrl = None,
    json_output: JsonOutput = False,
) -> None:
    """Abort a run (engine-level; actor "cli").

    No new steps start, unfinished steps become aborted, and workers cancel the steps they
    are running."""
    with open_store(settings_for(database_url=database_url), migrate=False) as store:
        run_id = store.find_run_id(run_id)
        running = store.abort(run_id, actor=ACTOR, reason=reason)
        run = store.get_run(run_id)
    if json_output:
        render.write_json({"run": render.run_json(run), "cancelledStepRecordIds": running})
        return
    note = f"; {len(running)} running step(s) will be cancelled by their workers" if running else ""
    render.plain(render.out(), f"aborted run {run_id} ({render.run_label(run)}){note}")
