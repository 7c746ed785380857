"""``podium agents list|add|show|refresh|disable|enable|demo``: the agent registry, on the
local database as the local operator (full rights in ``--org``) or on a server (``--url``)
as the owner of the API key."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from podium.cli import render
from podium.cli.options import JsonOutput, model_of_options
from podium.cli.place import Place, with_place
from podium.errors import Conflict, PodiumError

# The registry, its checks and the store are imported by the commands that use them, so
# that `podium agents ... --help` does not load SQLAlchemy and httpx.
if TYPE_CHECKING:
    from podium.agents.registry.admission import AgentChecks, AgentRegistration
    from podium.client.backend import Backend
    from podium.service.agent_views import AgentDetail, AgentView

app = typer.Typer(help="Manage the agent registry.", no_args_is_help=True)

Slug = Annotated[str, typer.Argument(metavar="SLUG", help="The agent's slug.")]


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
    render.fields(render.out(), lines)


@app.command("list")
@with_place(org=True)
def list_command(json_output: JsonOutput = False, *, place: Place) -> None:
    """List the agents a run of the organization can use (its own, global's, built-in)."""
    with place.backend() as backend:
        agents = backend.list_agents()
    if json_output:
        render.write_json({"items": agents})
    else:
        render.out().print(_table(agents))


@app.command("add")
@with_place(org=True)
def add_command(
    slug: Slug,
    agent_url: Annotated[
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
    json_output: JsonOutput = False,
    *,
    place: Place,
) -> None:
    """Register an agent: an A2A agent at AGENT_URL (its card is fetched now) or a python
    agent (--target)."""
    if (agent_url is None) == (target is None):
        raise typer.BadParameter("give exactly one of AGENT_URL and --target")
    request = _registration(
        slug=slug,
        url=agent_url,
        target=target,
        active=not inactive,
        concurrencyLimit=concurrency,
        timeoutSeconds=timeout,
    )
    with place.backend(migrate=True) as backend:
        agent = backend.register_agent(request)
    if json_output:
        render.write_json(agent)
    else:
        render.plain(
            render.out(), f"registered {agent.kind} agent {agent.slug} in {agent.organizationSlug}"
        )


# what a field of a registration is called on the command line, and what its pattern means
_ARGUMENTS = {
    "slug": ("SLUG", "a letter or digit, then up to 99 letters, digits, '.', '_' or '-'"),
    "url": ("AGENT_URL", "a URL without spaces or control characters"),
    "target": ("--target", "module:function, such as podium.agents.demo:echo"),
}


def _registration(**fields: object) -> AgentRegistration:
    from podium.agents.registry.admission import AgentRegistration

    return model_of_options(AgentRegistration, _ARGUMENTS, **fields)


@app.command("show")
@with_place(org=True)
def show_command(slug: Slug, json_output: JsonOutput = False, *, place: Place) -> None:
    """Show the agent a step naming SLUG gets: kind, endpoint, state, card and health."""
    with place.backend() as backend:
        agent = backend.show_agent(slug)
    _show(agent, json_output)


@app.command("refresh")
@with_place(org=True)
def refresh_command(slug: Slug, json_output: JsonOutput = False, *, place: Place) -> None:
    """Fetch an A2A agent's card again."""
    with place.backend(migrate=True) as backend:
        agent = backend.refresh_agent(slug)
    _show(agent, json_output)


def _activating(active: bool) -> Callable[..., None]:
    """``enable`` and ``disable``: one command, but for the state it sets."""

    @with_place(org=True)
    def command(slug: Slug, json_output: JsonOutput = False, *, place: Place) -> None:
        from podium.service.agent_views import AgentChanges

        with place.backend(migrate=True) as backend:
            agent = backend.update_agent(slug, AgentChanges(active=active))
        if json_output:
            render.write_json(agent)
        else:
            done = "enabled" if active else "disabled"
            render.plain(render.out(), f"{done} agent {slug} of {agent.organizationSlug}")

    return command


app.command("disable", help="Disable an agent: steps naming it fail with agent_disabled.")(
    _activating(False)
)
app.command("enable", help="Enable a disabled agent.")(_activating(True))


def register_demo_agents(backend: Backend, urls: dict[str, str]) -> list[AgentDetail]:
    """Register (or point at ``urls`` again) the demo A2A agents, fetching their cards."""
    from podium.agents.registry.admission import AgentRegistration
    from podium.service.agent_views import AgentChanges

    registered = []
    for slug, url in urls.items():
        try:
            registered.append(backend.register_agent(AgentRegistration(slug=slug, url=url)))
        except Conflict:
            registered.append(backend.update_agent(slug, AgentChanges(url=url, active=True)))
    return registered


def demo_checks() -> AgentChecks:
    """The environment's checks, with loopback allowed: the demo agents listen there."""
    from podium.agents.registry.admission import AgentChecks
    from podium.net.urlguard import UrlGuard

    return AgentChecks(
        url_guard=UrlGuard.allowing_loopback(UrlGuard.from_env()), python_modules=None
    )


@app.command("demo")
@with_place(org=True)
def demo_command(
    host: Annotated[
        str, typer.Option("--host", help="Loopback address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port (0: any free port).")] = 9700,
    register: Annotated[
        bool,
        typer.Option(
            "--register", help="Register the demo agents (in the local database or at --url)."
        ),
    ] = False,
    *,
    place: Place,
) -> None:
    """Serve demo A2A agents on loopback until interrupted (Ctrl-C).

    With --register they are registered in the local database (loopback allowed for them)
    or on the server at --url (which must allow loopback agent URLs); the worker that calls
    them must allow loopback too: PODIUM_AGENT_URL_ALLOWLIST=loopback."""
    from podium.agents.a2a.demo import print_urls, serve_demo

    def register_all(urls: dict[str, str]) -> None:
        try:
            with place.backend(migrate=True, agent_checks=demo_checks()) as backend:
                agents = register_demo_agents(backend, urls)
                where = backend.where
        except PodiumError as exc:
            render.plain(render.err(), f"error: registering the demo agents: {exc.message}")
            return
        names = ", ".join(a.slug for a in agents)
        render.plain(
            render.err(),
            f"registered {names} in {agents[0].organizationSlug} on {where}; "
            "workers calling them need PODIUM_AGENT_URL_ALLOWLIST=loopback",
        )

    def on_ready(urls: dict[str, str]) -> None:
        print_urls(urls)
        if register:
            # not in the server's thread: fetching the cards needs the server to answer
            threading.Thread(target=register_all, args=(urls,), daemon=True).start()

    serve_demo(host, port, on_ready=on_ready)
