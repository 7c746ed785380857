"""``podium cache stats|list|clear``: the step cache, on the local database as the local
operator (full rights in ``--org``) or on a server (``--url``, ``/api/admin/cache``) as the
owner of the API key."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from podium.cli import render
from podium.cli.options import JsonOutput
from podium.cli.place import Place, with_place

# The client and the cache's views are imported by the commands, so that
# `podium cache ... --help` answers without SQLAlchemy.
if TYPE_CHECKING:
    from podium.client.backend import CacheSelection

app = typer.Typer(help="Inspect and invalidate the step cache.", no_args_is_help=True)

Definition = Annotated[str | None, typer.Option("--definition", "-d", help="Definition name.")]
Step = Annotated[str | None, typer.Option("--step", "-s", help="Step id.")]
Fingerprint = Annotated[str | None, typer.Option("--fingerprint", help="One entry.")]
OlderThan = Annotated[
    float | None,
    typer.Option("--older-than", min=0, metavar="SECONDS", help="Stored this long ago."),
]
Expired = Annotated[
    bool,
    typer.Option("--expired", help="Past their expiresAt (what the sweeper removes)."),
]


def _selection(
    definition: str | None,
    step: str | None,
    fingerprint: str | None,
    older: float | None,
    expired: bool,
) -> CacheSelection:
    from podium.client.backend import CacheSelection

    return CacheSelection(
        definition=definition,
        step=step,
        fingerprint=fingerprint,
        older_than_seconds=older,
        expired=expired,
    )


@app.command("stats")
@with_place(org=True)
def stats_command(json_output: JsonOutput = False, *, place: Place) -> None:
    """Entries, expired entries and hits, by step."""
    with place.backend() as backend:
        found = backend.cache_stats()
    if json_output:
        render.write_json(found)
        return
    out = render.out()
    render.plain(out, f"{found.entries} entries, {found.hits} hits served, {found.expired} expired")
    if found.steps:
        table = Table(box=None, pad_edge=False)
        for column in ("DEFINITION", "STEP", "ENTRIES", "HITS", "EXPIRED"):
            table.add_column(column)
        for s in found.steps:
            table.add_row(s.definition, s.stepId, str(s.entries), str(s.hits), str(s.expired))
        out.print(table)


@app.command("list")
@with_place(org=True)
def list_command(
    definition: Definition = None,
    step: Step = None,
    fingerprint: Fingerprint = None,
    older_than: OlderThan = None,
    expired: Expired = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 100,
    json_output: JsonOutput = False,
    *,
    place: Place,
) -> None:
    """Entries with their hit counts, most recently stored first."""
    selection = _selection(definition, step, fingerprint, older_than, expired)
    with place.backend() as backend:
        entries = backend.list_cache(selection, limit)
    if json_output:
        render.write_json(entries)
        return
    out = render.out()
    if not entries:
        render.plain(out, "no cache entries")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("FINGERPRINT", "DEFINITION", "STEP", "HITS", "STORED", "EXPIRES"):
        table.add_column(column, no_wrap=True)
    for e in entries:
        table.add_row(
            e.fingerprint[:12],
            e.definition,
            e.stepId,
            str(e.hits),
            render.format_datetime(e.storedAt),
            render.format_datetime(e.expiresAt) if e.expiresAt else "never",
        )
    out.print(table)


@app.command("clear")
@with_place(org=True)
def clear_command(
    definition: Definition = None,
    step: Step = None,
    fingerprint: Fingerprint = None,
    older_than: OlderThan = None,
    expired: Expired = False,
    all_entries: Annotated[
        bool, typer.Option("--all", help="Delete every entry of the organization.")
    ] = False,
    json_output: JsonOutput = False,
    *,
    place: Place,
) -> None:
    """Delete the entries matching every filter given (or --all); --expired deletes what the
    sweeper would."""
    selection = _selection(definition, step, fingerprint, older_than, expired)
    with place.backend(migrate=True) as backend:
        deleted = backend.clear_cache(selection, everything=all_entries)
    if json_output:
        render.write_json({"deleted": deleted})
        return
    render.plain(render.out(), f"deleted {deleted} cache entr{'y' if deleted == 1 else 'ies'}")
