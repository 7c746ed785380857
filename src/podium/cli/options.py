"""Options shared by several commands, and the helpers that turn them into objects."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from podium.cli import render

# Every command imports this module, also for its --help: what pulls in pydantic,
# SQLAlchemy or httpx is imported inside the functions that need it.
if TYPE_CHECKING:
    from pydantic import BaseModel

    from podium.agents.registry.resolver import LocalAgents, Registry
    from podium.domain.definition import Definition
    from podium.errors import DefinitionInvalid, Issue
    from podium.settings import Settings
    from podium.storage.store import SqlStore

M = TypeVar("M", bound="BaseModel")

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="DATABASE_URL",
        show_envvar=True,
        help="SQLite file (sqlite:///path) or postgresql:// URL. \\[default: sqlite:///.podium/podium.db]",
    ),
]
ServerUrl = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="PODIUM_URL",
        show_envvar=True,
        help="Podium server to talk to (http://host:port); without it, the local database.",
    ),
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="PODIUM_API_KEY",
        show_envvar=False,
        help="API key for --url (env PODIUM_API_KEY; not needed by a server on loopback "
        "without keys).",
    ),
]
Organization = Annotated[
    str | None,
    typer.Option(
        "--org",
        help="Organization on the local database (default: PODIUM_ORG, else default); "
        "with --url, the API key's.",
        show_default=False,
    ),
]
JsonOutput = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")
]
AgentTargets = Annotated[
    list[str] | None,
    typer.Option(
        "--agent",
        metavar="SLUG=MODULE:FUNCTION",
        help="Register an in-process python agent (repeatable), besides the built-in demo agents.",
    ),
]
DefinitionFile = Annotated[
    Path,
    typer.Argument(
        exists=True,
        dir_okay=False,
        readable=True,
        metavar="FILE",
        help="Definition document (YAML or JSON).",
    ),
]


def settings_for(
    *,
    database_url: str | None = None,
    organization: str | None = None,
    worker_concurrency: int | None = None,
) -> Settings:
    """Settings from the environment, with the command-line options given on top."""
    from podium.settings import Settings

    return Settings.from_env(
        database_url=database_url,
        organization=organization,
        worker_concurrency=worker_concurrency,
    )


@contextmanager
def open_store(
    settings: Settings, *, migrate: bool = True, any_schema: bool = False
) -> Iterator[SqlStore]:
    """The database of ``settings``, closed afterwards. Commands that run work bring the
    schema up to date (``migrate``); commands that only look require it to be current;
    ``any_schema`` takes it as it is (the doctor reports an old one), once it answers."""
    from podium.storage.store import SqlStore

    if any_schema:
        from podium.storage.database import Database

        store = SqlStore(Database(settings.database_url))
    else:
        store = SqlStore.open(settings.database_url, migrate_schema=migrate)
    try:
        if any_schema:
            store.schema_status()  # StorageUnavailable (one line) when it cannot be reached
        yield store
    finally:
        store.close()


def read_definition(path: Path) -> Definition:
    """Parse and validate the definition in ``path``; raises :func:`invalid_definition`'s
    error, the same one ``podium definitions validate`` reports."""
    from podium.domain.definition import parse_definition
    from podium.errors import DefinitionInvalid

    try:
        return parse_definition(path.read_bytes())
    except DefinitionInvalid as exc:
        raise invalid_definition(path, exc.issues) from None


def invalid_definition(path: Path, issues: Sequence[Issue]) -> DefinitionInvalid:
    """The one error for an invalid definition file, from ``podium run`` and ``podium
    definitions validate`` alike: "error: FILE is invalid: N problem(s)", then one line per
    problem, exit code 2 (an input error)."""
    from podium.errors import DefinitionInvalid

    return DefinitionInvalid(f"{path} is invalid: {len(issues)} problem(s)", list(issues))


def model_of_options(
    model: type[M], arguments: Mapping[str, tuple[str, str]], **fields: object
) -> M:
    """``model`` (a request body) of command-line values, or a usage error naming the
    argument whose value is malformed: the same check the server makes, made before anything
    is sent. ``arguments``: a field's name on the command line and what its pattern means."""
    from pydantic import ValidationError

    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        name = str(first["loc"][0]) if first["loc"] else ""
        argument, meaning = arguments.get(name, (name, ""))
        reason = (
            f"must be {meaning}"
            if meaning and first["type"] == "string_pattern_mismatch"
            else first["msg"]
        )
        raise typer.BadParameter(reason, param_hint=f"'{argument}'") from None


def split_assignment(text: str, option: str, shape: str) -> tuple[str, str]:
    """``key=value`` -> ``(key, value)``; a usage error naming ``text`` otherwise."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise typer.BadParameter(f"expected {shape}, got {text!r}", param_hint=f"'{option}'")
    return key, value


def json_option(text: str | None, option: str) -> Any:
    """The JSON value of an option such as ``--input JSON`` (None when not given); a usage
    error naming ``option`` when it is not JSON."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint=f"'{option}'") from None


def json_or_text(raw: str) -> Any:
    """A value given on the command line: JSON when it parses (numbers, booleans, objects,
    lists, null), else the text itself."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def retry_changes(changed_input: Any, agents: Sequence[str] | None) -> dict[str, Any] | None:
    """The ``modifications`` of a retry (recovery or an approval's decision): ``input``
    merged into the step's, and ``--agent STEP=SLUG`` overrides; None when neither."""
    changes: dict[str, Any] = {}
    if changed_input is not None:
        changes["input"] = changed_input
    if agents:
        pairs = (split_assignment(a, "--agent", "STEP=SLUG") for a in agents)
        changes["agentOverrides"] = dict(pairs)
    return changes or None


def parse_parameters(assignments: Sequence[str], definition: Definition) -> dict[str, Any]:
    """``-p key=value`` values: kept as text for ``string`` parameters, else read as JSON when
    they parse (numbers, booleans, objects, lists, null) and as text when they do not."""
    kinds = {spec.name: spec.type for spec in definition.orchestration.parameters}
    values: dict[str, Any] = {}
    for text in assignments:
        key, raw = split_assignment(text, "-p", "key=value")
        values[key] = raw if kinds.get(key) == "string" else json_or_text(raw)
    return values


def registry_for(store: SqlStore, targets: Sequence[str]) -> Registry:
    """The agents a worker of this process uses: the agent registry of ``store`` (with its
    routing policy), then the built-in demo agents and each ``slug=module:function`` given."""
    from podium.agents.registry.resolver import Registry

    return Registry(store, builtins=local_agents(targets))


def local_agents(targets: Sequence[str]) -> LocalAgents:
    """The built-in demo agents plus each ``slug=module:function`` given."""
    from podium.agents.base import AgentError
    from podium.agents.registry.resolver import LocalAgents

    agents = LocalAgents()
    for text in targets:
        slug, target = split_assignment(text, "--agent", "slug=module:function")
        try:
            agents.add_python(slug, target.strip())
        except AgentError as exc:
            raise typer.BadParameter(exc.message, param_hint="'--agent'") from exc
    return agents


def configure_logging(level: int, *, console_stream: bool = False) -> None:
    """Log to stderr: with ``PODIUM_LOG_FORMAT=json`` one JSON object per line; otherwise
    rich on a terminal and one plain line per record elsewhere, fields as ``key=value``.

    ``console_stream`` sends text records through the stdout console instead, so that they
    print above a live display rather than through it.
    """
    from rich.logging import RichHandler

    from podium import logs
    from podium.errors import ConfigurationError
    from podium.settings import Settings

    try:
        kind = Settings.from_env().log_format
    except ConfigurationError:
        kind = "text"  # the command reports the bad variable itself
    console = render.out() if console_stream and kind == "text" else render.err()
    handler: logging.Handler
    if console.is_terminal and kind == "text":
        handler = RichHandler(console=console, show_path=False, markup=False)
        logs.install(handler, kind, "%(message)s", datefmt="[%X]")
    else:
        handler = logging.StreamHandler(console.file)
        logs.install(handler, kind, "%(asctime)s %(levelname)-7s %(message)s", datefmt="%H:%M:%S")
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("podium").setLevel(level)
