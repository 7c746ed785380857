"""``podium webhooks list|add|show|disable|enable|rotate|test|dead|replay``: the webhook
endpoints of the local database and their dead letters, as the local operator of ``--org``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from podium.cli import render
from podium.cli.options import JsonOutput, model_of_options
from podium.cli.place import Place, with_place
from podium.errors import InvalidInput, Issue

# The client and the webhook views are imported by the commands, so that
# `podium webhooks ... --help` answers without SQLAlchemy, httpx or pydantic.
if TYPE_CHECKING:
    from podium.service.webhooks import DeliveryView, EndpointView

app = typer.Typer(help="Manage webhook endpoints and dead letters.", no_args_is_help=True)

EndpointArg = Annotated[str, typer.Argument(metavar="ENDPOINT", help="The endpoint's id.")]
# what a field of a registration is called on the command line, and what its pattern means
_ARGUMENTS = {
    "url": ("URL", ""),
    "eventTypes": ("--event", ""),
    "definitions": ("--definition", "a definition name"),
    "description": ("--description", ""),
}


def _since(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            "bad time", [Issue(name, "must be an ISO 8601 time such as 2025-01-31T12:00")]
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _endpoints(items: list[EndpointView]) -> Table:
    table = Table(box=None, pad_edge=False)
    for column in ("ID", "URL", "EVENTS", "ENABLED", "FAILING SINCE"):
        table.add_column(column, no_wrap=column == "ID")
    for e in items:
        table.add_row(
            e.id,
            e.url,
            ", ".join(e.eventTypes) or "all",
            "yes" if e.enabled else f"no ({e.disabledReason or 'disabled'})",
            render.format_datetime(e.failingSince) if e.failingSince else "-",
        )
    return table


def _deliveries(items: list[DeliveryView]) -> Table:
    table = Table(box=None, pad_edge=False)
    for column in ("ID", "ENDPOINT", "RUN", "SEQ", "EVENT", "STATUS", "TRIES", "LAST ERROR"):
        table.add_column(column, no_wrap=column in ("ID", "SEQ"))
    for d in items:
        table.add_row(
            d.id,
            d.endpointId,
            d.runId[:8],
            str(d.sequence),
            d.eventType,
            d.status,
            str(d.attempts),
            d.lastError or "-",
        )
    return table


def _show(endpoint: EndpointView, json_output: bool, secret: str | None = None) -> None:
    if json_output:
        render.write_json(endpoint)
        return
    lines = [
        ("id", endpoint.id),
        ("url", endpoint.url),
        ("events", ", ".join(endpoint.eventTypes) or "all"),
        ("definitions", ", ".join(endpoint.definitions) if endpoint.definitions else "all"),
        ("enabled", "yes" if endpoint.enabled else f"no ({endpoint.disabledReason})"),
        ("rate limit", f"{endpoint.rateLimit}/s" if endpoint.rateLimit else "none"),
    ]
    if secret:
        lines.append(("secret", f"{secret}  (shown once: store it now)"))
    render.fields(render.out(), lines)


@app.command("list")
@with_place(org=True)
def list_command(json_output: JsonOutput = False, *, place: Place) -> None:
    """List the organization's webhook endpoints."""
    with place.backend() as backend:
        items = backend.list_webhooks()
    if json_output:
        render.write_json({"items": items})
    else:
        render.out().print(_endpoints(items))


@app.command("add")
@with_place(org=True)
def add_command(
    endpoint_url: Annotated[str, typer.Argument(metavar="URL", help="Where to POST events.")],
    event: Annotated[
        list[str] | None,
        typer.Option("--event", help="Event name or prefix (orchestration.run.*); repeatable."),
    ] = None,
    definition: Annotated[
        list[str] | None, typer.Option("--definition", help="Only these definitions; repeatable.")
    ] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    rate_limit: Annotated[
        int | None, typer.Option("--rate-limit", min=1, help="Per second.")
    ] = None,
    json_output: JsonOutput = False,
    *,
    place: Place,
) -> None:
    """Register an endpoint; prints its secret once."""
    from podium.service.webhooks import EndpointRegistration

    body = model_of_options(
        EndpointRegistration,
        _ARGUMENTS,
        url=endpoint_url,
        description=description,
        eventTypes=event or None,
        definitions=definition or None,
        rateLimit=rate_limit,
    )
    with place.backend(migrate=True) as backend:
        created = backend.register_webhook(body)
    if json_output:
        render.write_json(created)
    else:
        _show(created, False, secret=created.secret)


@app.command("show")
@with_place(org=True)
def show_command(endpoint: EndpointArg, json_output: JsonOutput = False, *, place: Place) -> None:
    """Show one endpoint (not its secret)."""
    with place.backend() as backend:
        shown = backend.show_webhook(endpoint)
    _show(shown, json_output)


def _enabling(enabled: bool) -> Callable[..., None]:
    """``enable`` and ``disable``: one command, but for the state it sets."""

    @with_place(org=True)
    def command(endpoint: EndpointArg, *, place: Place) -> None:
        from podium.service.webhooks import EndpointChanges

        with place.backend(migrate=True) as backend:
            view = backend.update_webhook(endpoint, EndpointChanges(enabled=enabled))
        render.plain(render.out(), f"endpoint {view.id} {'enabled' if enabled else 'disabled'}")

    return command


app.command("disable", help="Stop sending to an endpoint (its deliveries wait).")(_enabling(False))
app.command("enable", help="Send to an endpoint again (also after a 410 disabled it).")(
    _enabling(True)
)


@app.command("rotate")
@with_place(org=True)
def rotate_command(endpoint: EndpointArg, json_output: JsonOutput = False, *, place: Place) -> None:
    """Give an endpoint a new secret; the old one also signs during the overlap."""
    with place.backend(migrate=True) as backend:
        rotated = backend.rotate_webhook_secret(endpoint)
    if json_output:
        render.write_json(rotated)
        return
    render.plain(render.out(), f"new secret {rotated.secret}  (shown once: store it now)")
    render.plain(render.out(), f"the old secret also signs until {rotated.previousSecretExpiresAt}")


@app.command("test")
@with_place(org=True)
def send_test_command(
    endpoint: EndpointArg,
    json_output: JsonOutput = False,
    *,
    place: Place,
) -> None:
    """Send a signed test event to an endpoint now and show the answer (exit 1 when it
    failed). Over --url the server sends it."""
    with place.backend() as backend:
        target = backend.show_webhook(endpoint)
        result = backend.test_webhook(target.id)
    if json_output:
        render.write_json(result)
    else:
        text = result.error or f"HTTP {result.statusCode}"
        render.plain(render.out(), f"{target.url}: {'ok' if result.ok else 'failed'} ({text})")
    if not result.ok:
        raise typer.Exit(1)


@app.command("dead")
@with_place(org=True)
def dead_command(
    endpoint: Annotated[str | None, typer.Option("--endpoint", help="Only this endpoint.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="ISO time.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 100,
    json_output: JsonOutput = False,
    *,
    place: Place,
) -> None:
    """List the dead letters: deliveries whose last attempt failed."""
    from podium.client.backend import DeliveryFilter

    filters = DeliveryFilter(
        endpoint_id=endpoint, status="dead", since=_since(since, "--since"), limit=limit
    )
    with place.backend() as backend:
        items = backend.list_webhook_deliveries(filters)
    if json_output:
        render.write_json({"items": items})
    else:
        render.out().print(_deliveries(items))


@app.command("replay")
@with_place(org=True)
def replay_command(
    delivery: Annotated[
        str | None, typer.Argument(metavar="[DELIVERY]", help="One delivery to send again.")
    ] = None,
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", help="Replay its dead letters.")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="ISO time (with --endpoint).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="ISO time (with --endpoint).")
    ] = None,
    *,
    place: Place,
) -> None:
    """Send a delivery again (same webhook-id, signed afresh), or an endpoint's dead letters."""
    from podium.service.webhooks import ReplayRequest

    if (delivery is None) == (endpoint is None):
        raise typer.BadParameter("give a DELIVERY or --endpoint (with --since/--until)")
    request = None
    if endpoint is not None:
        request = ReplayRequest(
            endpointId=endpoint, since=_since(since, "--since"), until=_since(until, "--until")
        )
    with place.backend(migrate=True) as backend:
        if request is None:
            assert delivery is not None
            view = backend.replay_webhook_delivery(delivery)
            render.plain(render.out(), f"delivery {view.id} queued again ({view.webhookId})")
            return
        result = backend.replay_dead_letters(request)
    render.plain(render.out(), f"{result.replayed} dead letter(s) of {endpoint} queued again")
