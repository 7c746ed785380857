"""``podium doctor``: the runbook's checks on the local database or a server (``--url``).

Exit codes: 0 healthy (or only ``info``), 1 warnings, 2 errors. Read-only unless ``--fix``,
which applies the safe fixes (local database only) and checks again.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.padding import Padding
from rich.text import Text

from podium.cli import render
from podium.cli.options import JsonOutput
from podium.cli.place import Place, with_place
from podium.errors import ConfigurationError

# The checks, the client and the store are imported when the command runs, so that
# `podium doctor --help` answers without them.
if TYPE_CHECKING:
    from podium.client.local import LocalBackend
    from podium.doctor.views import DiagnosticsView, FindingView

SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
EVIDENCE_VALUE_WIDTH = 160


def parse_duration(text: str) -> float:
    """``300``, ``90s``, ``5m``, ``1.5h``, ``2d`` -> seconds (a bare number is seconds)."""
    match = _DURATION.match(text)
    if match is None or float(match.group(1)) <= 0:
        raise typer.BadParameter(
            f"{text!r} is not a duration such as 300, 90s, 5m or 1h", param_hint="'--stalled-after'"
        )
    return float(match.group(1)) * _UNIT[match.group(2) or "s"]


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if len(text) > EVIDENCE_VALUE_WIDTH:
        text = text[: EVIDENCE_VALUE_WIDTH - 1] + "…"
    return text


def print_finding(console: Console, finding: FindingView) -> None:
    head = Text("  ")
    head.append(f"{finding.severity.upper():<7}", style=SEVERITY_STYLE[finding.severity])
    head.append(f" {finding.check}", style="bold")
    console.print(head)
    _indented(console, Text(finding.summary))
    for key, value in finding.evidence.items():
        _indented(console, Text(f"{key}: {_value(value)}", style="dim"))
    if finding.fix is not None:
        _indented(console, Text("fix: ", style="green").append(finding.fix.command, style=""))
        if finding.fix.api:
            _indented(console, Text(f"api: {finding.fix.api}", style="dim"))


def _indented(console: Console, text: Text) -> None:
    """Four columns in, wrapped lines too (readable at 80 columns)."""
    console.print(Padding(text, (0, 0, 0, 4), expand=False))


def print_report(console: Console, view: DiagnosticsView) -> None:
    """Findings grouped by runbook section, then one summary line."""
    section: str | None = None
    for finding in view.findings:
        if finding.section != section:
            section = finding.section
            console.print(Text(section, style="bold underline"))
        print_finding(console, finding)
    for check, error in view.failedChecks.items():
        render.plain(console, f"check {check} could not run: {error}")
    counts = {s: sum(f.severity == s for f in view.findings) for s in SEVERITY_STYLE}
    if view.healthy:
        render.plain(console, f"healthy: {len(view.checks)} checks found nothing")
    else:
        render.plain(
            console,
            f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} "
            f"info from {len(view.checks)} checks",
        )


def _only(values: list[str] | None) -> list[str]:
    return [part.strip() for v in values or [] for part in v.split(",") if part.strip()]


@with_place()
def doctor_command(
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            metavar="CHECK",
            help="Run only these checks (repeatable or comma-separated; a group such as "
            "'stuck' names all of its checks).",
        ),
    ] = None,
    run: Annotated[
        str | None, typer.Option("--run", metavar="RUN", help="Look at this run only.")
    ] = None,
    stalled_after: Annotated[
        str,
        typer.Option(
            "--stalled-after",
            metavar="DURATION",
            help="An active run with no event for this long is stalled (300, 90s, 5m, 1h).",
        ),
    ] = "5m",
    fix: Annotated[
        bool,
        typer.Option(
            "--fix",
            help="Apply the safe, idempotent fixes (local database only), then check again.",
        ),
    ] = False,
    json_output: JsonOutput = False,
    *,
    place: Place,
) -> None:
    """Find what the troubleshooting runbook looks for: stuck runs, agent errors, slow
    queues, recovery conflicts, Podium's own set-up. Exit 0 healthy, 1 warnings, 2 errors."""
    from podium.client.local import LocalBackend

    seconds = parse_duration(stalled_after)
    checks = _only(only)
    console = render.out()
    # the local database as it is: an old schema is one of the things the doctor reports
    with place.backend(any_schema=True) as backend:
        if fix:
            if not isinstance(backend, LocalBackend):
                raise ConfigurationError("--fix works on the local database only (not --url)")
            _fix(backend, checks, run, seconds, json_output)
        view = backend.diagnostics(checks, run, seconds)
    if json_output:
        render.write_json(view)
    else:
        print_report(console, view)
    raise typer.Exit(view.exitCode)


def _fix(
    backend: LocalBackend, checks: list[str], run: str | None, seconds: float, quiet: bool
) -> None:
    from podium.doctor.runner import apply_fixes, diagnose
    from podium.service.diagnostics import options_for

    run_id = backend.store.find_run_id(run) if run else None
    options = options_for(backend.settings, organization=None, run_id=run_id, stalled_after=seconds)
    report = diagnose(backend.store, options, checks)
    applied = apply_fixes(backend.store, report, options)
    if quiet:
        return
    if not applied:
        render.plain(render.err(), "nothing to fix")
    for item in applied:
        where = f" (run {item.finding.run_id})" if item.finding.run_id else ""
        render.plain(render.err(), f"fixed {item.finding.check}{where}: {item.changed} changed")
