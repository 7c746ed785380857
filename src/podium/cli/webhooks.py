"""``podium webhooks list|add|show|disable|enable|rotate|test|dead|replay``: the webhook
endpoints of the local database and their dead letters, as the local operator of ``--org``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from podium.cli import render
from podium.cli.options import DatabaseUrl, JsonOutput, open_store, settings_for
from podium.errors import InvalidInput, Issue
from podium.service.actors import Actor

# The webhook service, its client and the store are imported by the commands, so that
# `podium webhooks ... --help` answers without SQLAlchemy, httpx or pydantic.
if TYPE_CHECKING:
    from podium.net.urlguard import UrlGuard
    from podium.service.webhooks import DeliveryView, EndpointView
    from podium.storage.webhooks import WebhookStore

app = typer.Typer(help="Manage webhook endpoints and dead letters.", no_args_is_help=True)

Org = Annotated[
    str | None,
    typer.Option("--org", envvar="PODIUM_ORG", help="Organization. [default: default]"),
]
EndpointArg = Annotated[str, typer.Argument(metavar="ENDPOINT", help="The endpoint's id.")]


@contextmanager
def _session(database_url: str | None, org: str | None) -> Iterator[tuple[WebhookStore, Actor]]:
    settings = settings_for(database_url=database_url, organization=org)
    with open_store(settings) as store:
        yield store.webhooks, Actor.local(settings.organization)


def _guard() -> UrlGuard:
    from podium.net.urlguard import UrlGuard

    return UrlGuard.from_env(subject="WEBHOOK")


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
    out = render.out()
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
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        render.plain(out, f"{key:<{width}}  {value}")


@app.command("list")
def list_command(
    org: Org = None, database_url: DatabaseUrl = None, json_output: JsonOutput = False
) -> None:
    """List the organization's webhook endpoints."""
    from podium.service import webhooks as service

    with _session(database_url, org) as (store, actor):
        items = service.list_endpoints(store, actor)
    if json_output:
        render.write_json({"items": items})
    else:
        render.out().print(_endpoints(items))


@app.command("add")
def add_command(
    url: Annotated[str, typer.Argument(metavar="URL", help="Where to POST events.")],
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
    org: Org = None,
    database_url: DatabaseUrl = None,
    json_output: JsonOutput = False,
) -> None:
    """Register an endpoint; prints its secret once."""
    from podium.service import webhooks as service
    from podium.service.webhooks import EndpointRegistration

    body = EndpointRegistration(
        url=url,
        description=description,
        eventTypes=event or None,
        definitions=definition or None,
        rateLimit=rate_limit,
    )
    with _session(database_url, org) as (store, actor):
        created = service.register(store, actor, body, _guard())
    if json_output:
        render.write_json(created)
    else:
        _show(created, False, secret=created.secret)


@app.command("show")
def show_command(
    endpoint: EndpointArg,
    org: Org = None,
    database_url: DatabaseUrl = None,
    json_output: JsonOutput = False,
) -> None:
    """Show one endpoint (not its secret)."""
    from podium.service import webhooks as service

    with _session(database_url, org) as (store, actor):
        _show(service.show(store, actor, endpoint), json_output)


def _set_enabled(endpoint: str, enabled: bool, org: str | None, database_url: str | None) -> None:
    from podium.service import webhooks as service
    from podium.service.webhooks import EndpointChanges

    with _session(database_url, org) as (store, actor):
        view = service.update(store, actor, endpoint, EndpointChanges(enabled=enabled), _guard())
    render.plain(render.out(), f"endpoint {view.id} {'enabled' if enabled else 'disabled'}")


@app.command("disable")
def disable_command(
    endpoint: EndpointArg, org: Org = None, database_url: DatabaseUrl = None
) -> None:
    """Stop sending to an endpoint (its deliveries wait)."""
    _set_enabled(endpoint, False, org, database_url)


@app.command("enable")
def enable_command(
    endpoint: EndpointArg, org: Org = None, database_url: DatabaseUrl = None
) -> None:
    """Send to an endpoint again (also after a 410 disabled it)."""
    _set_enabled(endpoint, True, org, database_url)


@app.command("rotate")
def rotate_command(
    endpoint: EndpointArg,
    org: Org = None,
    database_url: DatabaseUrl = None,
    json_output: JsonOutput = False,
) -> None:
    """Give an endpoint a new secret; the old one also signs during the overlap."""
    from podium.events.webhooks.config import WebhookSettings
    from podium.service import webhooks as service

    overlap = WebhookSettings.from_env().rotation_overlap_seconds
    with _session(database_url, org) as (store, actor):
        rotated = service.rotate(store, actor, endpoint, overlap)
    if json_output:
        render.write_json(rotated)
        return
    render.plain(render.out(), f"new secret {rotated.secret}  (shown once: store it now)")
    render.plain(render.out(), f"the old secret also signs until {rotated.previousSecretExpiresAt}")


@app.command("test")
def send_test_command(
    endpoint: EndpointArg, org: Org = None, database_url: DatabaseUrl = None
) -> None:
    """Send a signed test event to an endpoint now and show the answer."""
    from podium.domain.ids import new_id
    from podium.events.webhooks.client import WebhookClient
    from podium.events.webhooks.config import WebhookSettings
    from podium.events.webhooks.testing import build_test_body
    from podium.service import webhooks as service

    with _session(database_url, org) as (store, actor):
        record = store.get_endpoint(service.show(store, actor, endpoint).id, actor.organization)
    settings = WebhookSettings.from_env()

    async def send() -> tuple[bool, str]:
        client = WebhookClient(_guard(), timeout=settings.timeout_seconds)
        try:
            message_id = new_id()
            body = build_test_body(message_id, record, settings.public_url)
            answer = await client.send(record.url, (record.secret,), message_id, body)
        finally:
            await client.aclose()
        return answer.ok, answer.error or f"HTTP {answer.status_code}"

    ok, text = asyncio.run(send())
    render.plain(render.out(), f"{record.url}: {'ok' if ok else 'failed'} ({text})")
    if not ok:
        raise typer.Exit(1)


@app.command("dead")
def dead_command(
    endpoint: Annotated[str | None, typer.Option("--endpoint", help="Only this endpoint.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="ISO time.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 100,
    org: Org = None,
    database_url: DatabaseUrl = None,
    json_output: JsonOutput = False,
) -> None:
    """List the dead letters: deliveries whose last attempt failed."""
    from podium.service import webhooks as service

    with _session(database_url, org) as (store, actor):
        items = service.list_deliveries(
            store,
            actor,
            endpoint_id=endpoint,
            status="dead",
            since=_since(since, "--since"),
            limit=limit,
        )
    if json_output:
        render.write_json({"items": items})
    else:
        render.out().print(_deliveries(items))


@app.command("replay")
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
    org: Org = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Send a delivery again (same webhook-id, signed afresh), or an endpoint's dead letters."""
    from podium.service import webhooks as service
    from podium.service.webhooks import ReplayRequest

    if (delivery is None) == (endpoint is None):
        raise typer.BadParameter("give a DELIVERY or --endpoint (with --since/--until)")
    with _session(database_url, org) as (store, actor):
        if delivery is not None:
            view = service.replay(store, actor, delivery)
            render.plain(render.out(), f"delivery {view.id} queued again ({view.webhookId})")
            return
        assert endpoint is not None
        body = ReplayRequest(
            endpointId=endpoint, since=_since(since, "--since"), until=_since(until, "--until")
        )
        result = service.replay_dead(store, actor, body)
    render.plain(render.out(), f"{result.replayed} dead letter(s) of {endpoint} queued again")
