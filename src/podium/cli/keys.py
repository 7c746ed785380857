"""``podium keys create|list|revoke``: API keys, on the local database (every organization's,
as the local operator) or on a server (``--url``; an admin key manages its own
organization's).

A key is shown once, when it is created; the database keeps only its hash. Revoking takes
effect with the key's next request.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from podium.cli import render
from podium.cli.options import JsonOutput
from podium.cli.place import Place, with_place

if TYPE_CHECKING:
    from podium.service.views import ApiKeyView

app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)

ROLES = ("viewer", "operator", "admin")
_ORGANIZATION = re.compile(r"[a-z0-9][a-z0-9-]*\Z")
_KEY_ID = re.compile(r"[0-9A-Za-z]{1,64}\Z")


def _organization(value: str) -> str:
    if not _ORGANIZATION.match(value):
        raise typer.BadParameter(
            f"{value!r} is not an organization slug (a-z, 0-9 and -)", param_hint="'--org'"
        )
    return value


def _role(value: str) -> str:
    if value not in ROLES:
        raise typer.BadParameter(
            f"{value!r} is not a role; one of {', '.join(ROLES)}", param_hint="'--role'"
        )
    return value


def _key_id(value: str) -> str:
    if not _KEY_ID.match(value):
        raise typer.BadParameter(
            f"{value!r} is not a key id (letters and digits; see `podium keys list`)",
            param_hint="'KEY_ID'",
        )
    return value


@app.command("create")
@with_place()
def create_command(
    organization: Annotated[
        str, typer.Option("--org", help="Organization the key belongs to.", show_default=False)
    ],
    role: Annotated[
        str, typer.Option("--role", help="viewer, operator or admin.", show_default=False)
    ],
    name: Annotated[
        str | None,
        typer.Option("--name", help="Who uses it (recorded as the actor of its actions)."),
    ] = None,
    json_output: JsonOutput = False,
    *,
    place: Place,
) -> None:
    """Create an API key and print it (the only time it is shown)."""
    organization, role = _organization(organization), _role(role)
    with place.backend(migrate=True) as backend:
        created = backend.create_key(organization, role, name)
    if json_output:
        render.write_json(created.model_dump(mode="json"))
        return
    render.plain(render.out(), created.key)
    render.plain(
        render.err(),
        f"created key {created.id} ({created.name}, {created.role} of {created.organizationSlug}); "
        "it is shown only now: store it safely",
    )


@app.command("list")
@with_place()
def list_command(
    organization: Annotated[
        str | None, typer.Option("--org", help="Only keys of this organization.")
    ] = None,
    json_output: JsonOutput = False,
    *,
    place: Place,
) -> None:
    """Keys (never their secret), oldest first: every organization's on the local database,
    the API key's organization's on a server."""
    if organization is not None:
        organization = _organization(organization)
    with place.backend() as backend:
        found = backend.list_keys(organization)
    if json_output:
        render.write_json([k.model_dump(mode="json") for k in found])
        return
    if not found:
        render.plain(render.out(), "no API keys")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("ID", "ORGANIZATION", "ROLE", "NAME", "CREATED", "LAST USED", "STATE"):
        table.add_column(column)
    for k in found:
        table.add_row(
            k.id,
            k.organizationSlug,
            k.role,
            k.name,
            render.format_datetime(k.createdAt),
            render.format_datetime(k.lastUsedAt),
            _state(k),
        )
    render.out().print(table)


def _state(key: ApiKeyView) -> str:
    return f"revoked {render.format_datetime(key.revokedAt)}" if key.revokedAt else "active"


@app.command("revoke")
@with_place()
def revoke_command(
    key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="The key's id (see `list`).")],
    json_output: JsonOutput = False,
    *,
    place: Place,
) -> None:
    """Revoke a key: its next request gets 401."""
    key_id = _key_id(key_id)
    with place.backend() as backend:
        revoked = backend.revoke_key(key_id)
    if json_output:
        render.write_json(revoked.model_dump(mode="json"))
        return
    render.plain(
        render.out(),
        f"revoked key {revoked.id} ({revoked.name}, {revoked.role} of {revoked.organizationSlug})",
    )
