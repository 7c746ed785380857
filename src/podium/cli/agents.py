"""``podium agents list|add|show|refresh|disable|enable|demo``: the agent registry of the local
database, as the local operator (full rights in ``--org``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from podium.cli import render
from podium.cli.options import DatabaseUrl, JsonOutput, open_store, settings_for
from podium.errors import Conflict, PodiumError
from podium.service.actors import Actor

# The registry, its checks and the store are imported by the commands that use them, so
# that `podium agents ... --help` does not load SQLAlchemy and httpx.
if TYPE_CHECKING:
    from podium.agents.registry.admission import AgentChecks
    from podium.service.agent_views import AgentDetail, AgentView
    from podium.storage.store import SqlStore

app = typer.Typer(help="Manage the agent registry.", no_args_is_help=True)

Org = Annotated[
    str | None,
    typer.Option("--org", envvar="PODIUM_ORG", help="Organization. [default: default]"),
]
Slug = Annotated[str, typer.Argument(metavar="SLUG", help="The agent's slug.")]


@contextmanager
def _session(
    database_url: str | None, org: str | None, *, writes: bool = True
) -> Iterator[tuple[SqlStore, Actor]]:
    """The local database and actor; a command that only reads (``writes=False``) neither
    migrates nor creates the database."""
    settings = settings_for(database_url=database_url, organization=org)
    with open_store(settings, migrate=writes) as store:
        yield store, Actor.local(settings.organization)


def _checks() -> AgentChecks:
    from podium.agents.registry.admission import AgentChecks

    return AgentChecks.from_env(trusted=True)


def _table(agents: list[AgentView]) -> Table:
    table = Table(box=None, pad_edge=False)
    for column in ("SLUG", "ORG", "KIND", "ENDPOINT", "ACTIVE", "HEALTH", "CARD"):
        table.add_column(column, no_wrap=column in ("SLUG", "ORG", "KIND"))
    for a in agents:
        card = f"{a.card.name or '-'} {a.card.version or ''}".strip() if a.card else "-"
        table.add_row(
            a.slug,
            a.organizationSlug + (" (built-in)" if a.builtin else ""),
            a.kind,
            a.url or a.target or "-",
            "yes" if a.active else "no",
            a.health.status,
            card,
        )
    return table


def _show(agent: AgentDetail, json_output: bool) -> None:
    if json_output:
        render.write_json(agent)
        return
    out = render.out()
    lines = [
        ("slug", agent.slug),
        ("organization", agent.organizationSlug + (" (built-in)" if agent.builtin else "")),
        ("kind", agent.kind),
        ("url" if agent.kind == "a2a" else "target", agent.url or agent.target or "-"),
        ("active", "yes" if agent.active else "no"),
        ("concurrency", str(agent.concurrencyLimit or "unlimited")),
        ("timeout", f"{agent.timeoutSeconds:g} s" if agent.timeoutSeconds else "none"),
        ("health", agent.health.status),
    ]
    if agent.health.lastSuccessAt:
        lines.append(("last success", render.format_datetime(agent.health.lastSuccessAt)))
    if agent.health.lastError:
        when = render.format_datetime(agent.health.lastErrorAt)
        lines.append(("last error", f"{when} {render.error_text(agent.health.lastError)}"))
    if agent.card:
        card = agent.card
        lines.append(("card", f"{card.name} {card.version or ''} (A2A {card.protocolVersion})"))
        lines += [("skill", f"{s.id}: {s.description or s.name or ''}") for s in card.skills]
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        render.plain(out, f"{key:<{width}}  {value}")


@app.command("list")
def list_command(
    org: Org = None, database_url: DatabaseUrl = None, json_output: JsonOutput = False
) -> None:
    """List the agents a run of the organization can use (its own, global's, built-in)."""

    from podium.service import agents as service

    with _session(database_url, org, writes=False) as (store, actor):
        agents = service.list_agents(store, actor)
    if json_output:
        render.write_json({"items": agents})
    else:
        render.out().print(_table(agents))


@app.command("add")
def add_command(
    slug: Slug,
    url: Annotated[
        str | None,
        typer.Argument(metavar="AGENT_URL", help="Base URL of an A2A agent.", show_default=False),
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", help="module:function of a python agent.")
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", min=1, help="Calls at once, per worker.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=0.001, help="Seconds per call.")
    ] = None,
    inactive: Annotated[bool, typer.Option("--inactive", help="Register it disabled.")] = False,
    org: Org = None,
    database_url: DatabaseUrl = None,
    json_output: JsonOutput = False,
) -> None:
    """Register an agent: an A2A agent at AGENT_URL (its card is fetched now) or a python
    agent (--target)."""
    from podium.agents.registry.admission import AgentRegistration
    from podium.service import agents as service

    if (url is None) == (target is None):
        raise typer.BadParameter("give exactly one of AGENT_URL and --target")
    request = AgentRegistration(
        slug=slug,
        url=url,
        target=target,
        active=not inactive,
        concurrencyLimit=concurrency,
        timeoutSeconds=timeout,
    )
    with _session(database_url, org) as (store, actor):
        agent = service.register(store, actor, request, _checks())
    if json_output:
        render.write_json(agent)
    else:
        render.plain(
            render.out(), f"registered {agent.kind} agent {agent.slug} in {agent.organizationSlug}"
        )


@app.command("show")
def show_command(
    slug: Slug, org: Org = None, database_url: DatabaseUrl = None, json_output: JsonOutput = False
) -> None:
    """Show the agent a step naming SLUG gets: kind, endpoint, state, card and health."""
    from podium.service import agents as service

    with _session(database_url, org, writes=False) as (store, actor):
        agent = service.show(store, actor, slug)
    _show(agent, json_output)


@app.command("refresh")
def refresh_command(
    slug: Slug, org: Org = None, database_url: DatabaseUrl = None, json_output: JsonOutput = False
) -> None:
    """Fetch an A2A agent's card again."""
    from podium.service import agents as service

    with _session(database_url, org) as (store, actor):
        agent = service.refresh(store, actor, slug, _checks())
    _show(agent, json_output)


@app.command("disable")
def disable_command(
    slug: Slug, org: Org = None, database_url: DatabaseUrl = None, json_output: JsonOutput = False
) -> None:
    """Disable an agent: steps naming it fail with agent_disabled."""
    from podium.service import agents as service
    from podium.service.agent_views import AgentChanges

    with _session(database_url, org) as (store, actor):
        agent = service.update(store, actor, slug, AgentChanges(active=False), _checks())
    if json_output:
        render.write_json(agent)
    else:
        render.plain(render.out(), f"disabled agent {slug} of {agent.organizationSlug}")


@app.command("enable")
def enable_command(
    slug: Slug, org: Org = None, database_url: DatabaseUrl = None, json_output: JsonOutput = False
) -> None:
    """Enable a disabled agent."""
    from podium.service import agents as service
    from podium.service.agent_views import AgentChanges

    with _session(database_url, org) as (store, actor):
        agent = service.update(store, actor, slug, AgentChanges(active=True), _checks())
    if json_output:
        render.write_json(agent)
    else:
        render.plain(render.out(), f"enabled agent {slug} of {agent.organizationSlug}")


def register_demo_agents(
    store: SqlStore, actor: Actor, urls: dict[str, str], checks: AgentChecks
) -> list[AgentDetail]:
    """Register (or point at ``urls`` again) the demo A2A agents, fetching their cards."""
    from podium.agents.registry.admission import AgentRegistration
    from podium.service import agents as service
    from podium.service.agent_views import AgentChanges

    registered = []
    for slug, url in urls.items():
        try:
            registered.append(
                service.register(store, actor, AgentRegistration(slug=slug, url=url), checks)
            )
        except Conflict:
            registered.append(
                service.update(store, actor, slug, AgentChanges(url=url, active=True), checks)
            )
    return registered


@app.command("demo")
def demo_command(
    host: Annotated[
        str, typer.Option("--host", help="Loopback address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port (0: any free port).")] = 9700,
    register: Annotated[
        bool, typer.Option("--register", help="Register the demo agents in the local database.")
    ] = False,
    org: Org = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Serve demo A2A agents on loopback until interrupted (Ctrl-C).

    With --register they are registered in the local database (loopback allowed for them);
    the worker that calls them must allow loopback too: PODIUM_AGENT_URL_ALLOWLIST=loopback."""
    from podium.agents.a2a.demo import print_urls, serve_demo
    from podium.agents.registry.admission import AgentChecks
    from podium.net.urlguard import UrlGuard

    settings = settings_for(database_url=database_url, organization=org)
    checks = AgentChecks(
        url_guard=UrlGuard.allowing_loopback(UrlGuard.from_env()), python_modules=None
    )

    def register_all(urls: dict[str, str]) -> None:
        try:
            with open_store(settings) as store:
                agents = register_demo_agents(
                    store, Actor.local(settings.organization), urls, checks
                )
        except PodiumError as exc:
            render.plain(render.err(), f"error: registering the demo agents: {exc.message}")
            return
        names = ", ".join(a.slug for a in agents)
        render.plain(
            render.err(),
            f"registered {names} in {settings.organization}; "
            "workers calling them need PODIUM_AGENT_URL_ALLOWLIST=loopback",
        )

    def on_ready(urls: dict[str, str]) -> None:
        print_urls(urls)
        if register:
            # not in the server's thread: fetching the cards needs the server to answer
            threading.Thread(target=register_all, args=(urls,), daemon=True).start()

    serve_demo(host, port, on_ready=on_ready)
