"""Where a command works: a Podium server (``--url``) or the local database.

Every command that reads or changes runs, definitions, approvals, agents, keys, the step
cache or webhooks takes the same ``--url``, ``--api-key`` and ``--database-url`` options
(and, where the local operator acts for one organization, ``--org``). They are declared
once, by :func:`with_place`, and reach the command as one :class:`Place`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from podium.cli.options import (
    ApiKey,
    DatabaseUrl,
    Organization,
    ServerUrl,
    open_store,
    settings_for,
)

if TYPE_CHECKING:
    from podium.agents.registry.admission import AgentChecks
    from podium.client.backend import Backend

R = TypeVar("R")


@dataclass(frozen=True)
class Place:
    """The Podium server at ``url`` (as the owner of ``api_key``) when one is given, else
    the local database ``database_url`` (None: ``DATABASE_URL``) as the local operator of
    ``organization`` (None: ``PODIUM_ORG``)."""

    url: str | None = None
    api_key: str | None = None
    database_url: str | None = None
    organization: str | None = None

    @property
    def remote(self) -> bool:
        return bool(self.url)

    @contextmanager
    def backend(
        self,
        *,
        migrate: bool = False,
        any_schema: bool = False,
        agent_checks: AgentChecks | None = None,
    ) -> Iterator[Backend]:
        """The place as a :class:`~podium.client.backend.Backend`, closed afterwards. The
        local database is brought up to date with ``migrate`` (commands that change
        something), taken as it is with ``any_schema`` (the doctor reports an old schema),
        and otherwise required to be current; its operator admits agents with
        ``agent_checks`` (None: the environment's).

        A server decides the organization from the API key, so an ``organization`` with a
        ``url`` is a usage error rather than ignored."""
        if self.url and self.organization:
            raise typer.BadParameter(
                "--org names an organization of the local database; with --url the API "
                "key's organization is used",
                param_hint="'--org'",
            )
        if self.url:
            from podium.client.remote import RemoteBackend

            with RemoteBackend(self.url, api_key=self.api_key) as remote:
                yield remote
            return
        from podium.client.local import LocalBackend

        settings = settings_for(database_url=self.database_url, organization=self.organization)
        with open_store(settings, migrate=migrate, any_schema=any_schema) as store:
            yield LocalBackend(store, settings, agent_checks=agent_checks)


# the options of a place, by the name of the command's parameter
_OPTIONS: dict[str, Any] = {
    "org": Organization,
    "url": ServerUrl,
    "api_key": ApiKey,
    "database_url": DatabaseUrl,
}


def with_place(*, org: bool = False) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Give a typer command ``--url``, ``--api-key`` and ``--database-url`` (with ``org``,
    first ``--org``), listed in its help before its ``--json`` (else last). The command takes
    a keyword-only ``place: Place`` instead."""
    names = [n for n in _OPTIONS if org or n != "org"]

    def decorate(command: Callable[..., R]) -> Callable[..., R]:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != "place"]
        added = [
            inspect.Parameter(
                n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=_OPTIONS[n]
            )
            for n in names
        ]
        at = next((i for i, p in enumerate(own) if p.name == "json_output"), len(own))
        parameters = [*own[:at], *added, *own[at:]]

        @functools.wraps(command)
        def with_options(*args: Any, **kwargs: Any) -> R:
            given = {n: kwargs.pop(n) for n in names}
            place = Place(
                url=given["url"],
                api_key=given["api_key"],
                database_url=given["database_url"],
                organization=given.get("org"),
            )
            return command(*args, place=place, **kwargs)

        # typer reads a command's options from its signature and annotations
        with_options.__signature__ = signature.replace(  # type: ignore[attr-defined]  # read by inspect
            parameters=parameters
        )
        with_options.__annotations__ = {p.name: p.annotation for p in parameters}
        with_options.__annotations__["return"] = signature.return_annotation
        return with_options

    return decorate
