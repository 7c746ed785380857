"""Commands imported when they run, not when ``podium`` starts.

``podium --help`` lists every command from the table below without importing one, and
``podium runs list`` imports ``podium.cli.runs`` only: the commands' modules pull in
SQLAlchemy, Alembic, httpx and the A2A SDK, which a new user should not wait for to read a
help text. ``tests/cli/test_startup.py`` checks that each short help below is the command's.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import ClassVar

import typer
from typer import _click as click  # typer vendors click; its commands are of these types
from typer._coercion import PassThroughRuntimeParam
from typer.core import TyperCommand, TyperGroup, TyperOption, _TyperParameter


@dataclass(frozen=True)
class LazyCommand:
    """Where a command lives (``module``, ``attribute``: a function or a ``typer.Typer``) and
    the one line ``podium --help`` shows for it."""

    module: str
    attribute: str
    short_help: str


def load(name: str, entry: LazyCommand) -> click.Command:
    """Import ``entry`` and build its click command, named ``name``."""
    obj = getattr(importlib.import_module(entry.module), entry.attribute)
    if isinstance(obj, typer.Typer):
        command: click.Command = typer.main.get_group(obj)
    else:
        holder = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
        holder.command(name)(obj)
        command = typer.main.get_command(holder)
    command.name = name
    return command


class LazyGroup(TyperGroup):
    """A typer group whose commands come from :attr:`lazy` (name -> :class:`LazyCommand`)."""

    lazy: ClassVar[dict[str, LazyCommand]] = {}
    _listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.lazy)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = self.lazy.get(cmd_name)
        if entry is None:
            return None
        if self._listing:  # the help page needs a name and a line, not the command
            return TyperCommand(cmd_name, short_help=entry.short_help, help=entry.short_help)
        return load(cmd_name, entry)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


def flags_without_type() -> None:
    """Show boolean flags as ``--json``, not ``--json <bool>``: typer's rich help prints the
    value type of every option, flags included, though a flag takes no value."""
    if getattr(TyperOption, "_podium_flags", False):
        return
    shown = TyperOption.display_type_rich

    def display_type_rich(self: TyperOption, ctx: click.Context) -> str | None:
        return None if self.is_flag and self.metavar is None else shown(self, ctx)

    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]  # the fix
    TyperOption._podium_flags = True  # type: ignore[attr-defined]


def missing_values_without_pydantic() -> None:
    """Leave pydantic unloaded while no parameter has a value: typer coerces each value
    through a pydantic ``TypeAdapter``, built on first use, even a missing one (None), which
    becomes None (or ``()`` when repeatable) without it. So ``podium runs list --help``
    imported pydantic for the unused ``--help`` of ``podium`` and ``runs``. A missing value
    is coerced by a runtime that builds no adapter; a given value as before."""
    if getattr(_TyperParameter, "_podium_missing", False):
        return
    process = _TyperParameter.process_value

    def process_value(self: _TyperParameter, ctx: click.Context, value: object) -> object:
        if value is not None or self._runtime_param is not None:
            return process(self, ctx, value)
        descriptor = self.type_descriptor
        self._runtime_param = PassThroughRuntimeParam(
            parameter_info=descriptor.parameter_info, annotation=descriptor.annotation
        )
        try:
            return process(self, ctx, value)
        finally:
            self._runtime_param = None  # a later value gets the real coercion

    _TyperParameter.process_value = process_value  # type: ignore[method-assign]  # the fix
    _TyperParameter._podium_missing = True  # type: ignore[attr-defined]
