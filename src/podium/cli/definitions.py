"""``podium definitions validate``: check a definition document without running it."""

from __future__ import annotations

import typer

from podium.cli import render
from podium.cli.options import DefinitionFile, JsonOutput, read_definition
from podium.errors import DefinitionInvalid

app = typer.Typer(help="Work with definition documents.", no_args_is_help=True)


@app.command("validate")
def validate_command(file: DefinitionFile, json_output: JsonOutput = False) -> None:
    """Check a definition document without running it.

    Prints "valid: name@version (N steps)", or every problem as "path: message" and exits
    with code 1."""
    try:
        definition = read_definition(file)
    except DefinitionInvalid as exc:
        if json_output:
            render.write_json(
                {"valid": False, "message": exc.message, "issues": [vars(i) for i in exc.issues]}
            )
        else:
            for issue in exc.issues:
                render.plain(render.out(), str(issue))
            render.plain(render.err(), f"error: {exc.message}")
        raise typer.Exit(1) from None
    meta = definition.metadata
    steps = len(definition.orchestration.steps)
    if json_output:
        render.write_json(
            {"valid": True, "name": meta.name, "version": meta.version, "steps": steps}
        )
    else:
        render.plain(render.out(), f"valid: {meta.name}@{meta.version} ({steps} steps)")
