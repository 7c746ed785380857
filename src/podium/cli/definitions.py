"""``podium definitions validate|push|list|show|activate|deactivate``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from podium.cli import render
from podium.cli.options import DefinitionFile, JsonOutput, invalid_definition
from podium.cli.place import Place, with_place
from podium.errors import Conflict, Issue

if TYPE_CHECKING:  # imported by the commands that use them (fast --help)
    from podium.service.views import DefinitionView, ValidationView

app = typer.Typer(help="Validate, push and manage definition versions.", no_args_is_help=True)

Name = Annotated[str, typer.Argument(metavar="NAME", help="Definition name (metadata.name).")]
Version = Annotated[str, typer.Argument(metavar="VERSION", help="Exact version, e.g. 1.0.0.")]


def _label(view: DefinitionView) -> str:
    return f"{view.name}@{view.version}"


@app.command("validate")
@with_place()
def validate_command(
    file: DefinitionFile,
    json_output: JsonOutput = False,
    *,
    place: Place,
) -> None:
    """Check a definition document without running or saving it (over --url, the server
    checks it). Locally, agents the local registry does not know are warned about (the
    check still passes: they may be registered before the run).

    Prints "valid: name@version (N steps)"; for an invalid document the same error as
    ``podium run`` (every problem as "path: message") and exit code 2."""
    from podium.service import definitions as service

    source = file.read_bytes()
    view: ValidationView
    if place.remote:
        with place.backend() as remote:
            view = remote.validate(source)
    else:  # no database needed: only the unknown agents are looked up, if there is one
        view = service.validate(source)
    if json_output:
        render.write_json(view)
    elif view.valid:
        render.plain(render.out(), f"valid: {view.name}@{view.version} ({view.steps} steps)")
    if view.valid and not place.remote:
        for warning in unknown_agents(source, place.database_url):
            render.plain(render.err(), f"warning: {warning}")
    if not view.valid:
        if json_output:
            raise typer.Exit(2)
        issues = [Issue(i.get("path", ""), i.get("message", "")) for i in view.issues]
        raise invalid_definition(file, issues)


def unknown_agents(source: bytes, database_url: str | None) -> list[str]:
    """One line per agent slug of a valid document that the local registry (the database's
    agents of the organization and ``global``, and the built-in agents) does not know. Without
    a local database only the built-in agents are known; none is created."""
    from podium.agents.demo import BUILTIN_AGENTS
    from podium.cli.options import open_store, settings_for
    from podium.domain.definition import parse_definition
    from podium.errors import NoDatabase

    definition = parse_definition(source)
    slugs = sorted(
        {s.agent for s in definition.orchestration.steps if s.agent} - set(BUILTIN_AGENTS)
    )
    if not slugs:
        return []
    settings = settings_for(database_url=database_url)
    org = settings.organization
    try:
        with open_store(settings, migrate=False) as store:
            missing = [s for s in slugs if store.find_agent(org, s) is None]
        where = f"the local registry (organization {org})"
    except NoDatabase:
        missing, where = slugs, "the built-in agents (there is no local database)"
    return [f"agent {slug!r} is not in {where}" for slug in missing]


@app.command("push")
@with_place()
def push_command(
    file: DefinitionFile,
    draft: Annotated[
        bool, typer.Option("--draft", help="Store the version as a draft, not active.")
    ] = False,
    json_output: JsonOutput = False,
    *,
    place: Place,
) -> None:
    """Store FILE as a new definition version (active unless --draft).

    Pushing the same document again changes nothing; a different document under a version
    that exists is refused: versions are immutable."""
    source = file.read_bytes()
    with place.backend(migrate=True) as b:
        try:
            view, created = b.push(source, activate=not draft)
        except Conflict as exc:
            raise Conflict(f"{exc.message} (bump metadata.version in {file})") from None
    if json_output:
        render.write_json(view)
    elif created:
        render.plain(render.out(), f"pushed {_label(view)} ({view.status})")
    else:
        render.plain(render.out(), f"unchanged: {_label(view)} ({view.status}) was pushed before")


@app.command("list")
@with_place()
def list_command(json_output: JsonOutput = False, *, place: Place) -> None:
    """Definitions (this organization's and global ones) with their versions."""
    with place.backend() as backend:
        found = backend.list_definitions()
    if json_output:
        render.write_json(found)
        return
    if not found:
        render.plain(render.out(), "no definitions")
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("name", "organization", "active", "versions", "title"):
        table.add_column(column, no_wrap=column != "title")
    for summary in found:
        versions = ", ".join(f"{v.version} ({v.status})" for v in summary.versions)
        table.add_row(
            summary.name,
            summary.organizationSlug,
            summary.latestActive or "-",
            versions,
            summary.displayName or "",
        )
    render.out().print(table)


@app.command("show")
@with_place()
def show_command(
    name: Name,
    version: Annotated[
        str | None,
        typer.Option("--version", "-v", help="Exact version. \\[default: latest active]"),
    ] = None,
    json_output: JsonOutput = False,
    *,
    place: Place,
) -> None:
    """One definition version and its document (YAML)."""
    with place.backend() as backend:
        view = backend.show_definition(name, version)
    if json_output:
        render.write_json(view)
        return
    out = render.out()
    render.plain(out, f"definition    {_label(view)}")
    out.print(Text("status        ").append_text(render.status_text(view.status)))
    render.plain(out, f"organization  {view.organizationSlug}")
    if view.displayName:
        render.plain(out, f"title         {view.displayName}")
    render.plain(out, f"updated       {render.format_datetime(view.updatedAt)}")
    if view.document is not None:
        out.print()
        import yaml

        text = yaml.safe_dump(view.document, sort_keys=False, allow_unicode=True, width=100)
        render.plain(out, text.rstrip())


def _setting_status(status: str) -> Callable[..., None]:
    """``activate`` and ``deactivate``: one command, but for the status it sets."""

    @with_place()
    def command(
        name: Name,
        version: Version,
        json_output: JsonOutput = False,
        *,
        place: Place,
    ) -> None:
        with place.backend(migrate=True) as backend:
            view = backend.set_definition_status(name, version, status)
        if json_output:
            render.write_json(view)
        else:
            render.plain(render.out(), f"{_label(view)} is {view.status}")

    return command


app.command(
    "activate", help="Make a version launchable (the highest active version is the default)."
)(_setting_status("active"))
app.command("deactivate", help="Stop new runs of a version (runs already launched go on).")(
    _setting_status("inactive")
)
