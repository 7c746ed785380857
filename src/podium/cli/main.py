"""The ``podium`` command: assembles the commands and turns every error into one line.

Exit codes: 0 success; 1 a failed or aborted run, an invalid definition under ``validate``,
or an operational error; 2 a usage or validation error; 130 interrupted.
``PODIUM_DEBUG=1`` re-raises unexpected errors with their traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, ClassVar

import typer
from typer.main import get_command

from podium.cli.lazy import (
    LazyCommand,
    LazyGroup,
    flags_without_type,
    missing_values_without_pydantic,
)
from podium.cli.render import err, out, plain
from podium.errors import ConfigurationError, InvalidInput, PodiumError

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class Commands(LazyGroup):
    lazy: ClassVar[dict[str, LazyCommand]] = {
        "run": LazyCommand(
            "podium.cli.run", "run_command", "Launch a run of FILE and follow it until it ends."
        ),
        "runs": LazyCommand("podium.cli.runs", "app", "List, inspect and watch runs."),
        "definitions": LazyCommand(
            "podium.cli.definitions", "app", "Validate, push and manage definition versions."
        ),
        "agents": LazyCommand("podium.cli.agents", "app", "Manage the agent registry."),
        "worker": LazyCommand(
            "podium.cli.worker", "worker_command", "Claim and run steps until SIGTERM or SIGINT."
        ),
        "retry": LazyCommand(
            "podium.cli.recovery",
            "retry_command",
            "Run a failed step again, with a new generation; the run returns to running.",
        ),
        "skip": LazyCommand(
            "podium.cli.recovery",
            "skip_command",
            "Mark a failed, pending or queued step skipped; its dependents proceed.",
        ),
        "abort": LazyCommand(
            "podium.cli.recovery",
            "abort_command",
            "Abort a run: no new steps start and unfinished steps become aborted.",
        ),
        "migrate": LazyCommand(
            "podium.cli.migrate",
            "migrate_command",
            "Bring the database schema to the latest revision.",
        ),
        "serve": LazyCommand(
            "podium.cli.serve",
            "serve_command",
            "Serve the HTTP API (docs at /docs) with an embedded worker, until SIGTERM or Ctrl-C.",
        ),
        "keys": LazyCommand("podium.cli.keys", "app", "Create, list and revoke API keys."),
        "cache": LazyCommand("podium.cli.cache", "app", "Inspect and invalidate the step cache."),
        "webhooks": LazyCommand(
            "podium.cli.webhooks", "app", "Manage webhook endpoints and dead letters."
        ),
        "doctor": LazyCommand(
            "podium.cli.doctor",
            "doctor_command",
            "Find what the troubleshooting runbook looks for: stuck runs, agent errors, slow "
            "queues, recovery conflicts, Podium's own set-up. Exit 0 healthy, 1 warnings, "
            "2 errors.",
        ),
        "approvals": LazyCommand(
            "podium.cli.approvals", "app", "Human checkpoints waiting for a decision."
        ),
    }


app = typer.Typer(
    name="podium",
    cls=Commands,
    help="Podium: durable orchestration of AI-agent DAGs on SQLite or PostgreSQL.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from podium import __version__

        plain(out(), f"podium {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    pass


def exit_code_for(exc: PodiumError) -> int:
    """Bad input and bad configuration are usage errors; the rest are operational."""
    return EXIT_USAGE if isinstance(exc, InvalidInput | ConfigurationError) else EXIT_FAILURE


def report_podium_error(exc: PodiumError) -> int:
    """One ``error:`` line, then one indented line per issue that the line does not say
    already (a single problem is usually in the message itself)."""
    plain(err(), f"error: {exc.message}")
    if isinstance(exc, InvalidInput):
        for issue in exc.issues:
            if issue.message not in exc.message:
                plain(err(), f"  {issue}")
    return exit_code_for(exc)


def report_usage_error(exc: typer.TyperException) -> int:
    if type(exc).__name__ == "NoArgsIsHelpError":
        return exc.exit_code  # the help was printed already; that is the whole answer
    message = exc.format_message()
    command_path = getattr(getattr(exc, "ctx", None), "command_path", None)
    hint = f" (see '{command_path} --help')" if isinstance(command_path, str) else ""
    plain(err(), f"error: {' '.join(message.split())}{hint}")
    return exc.exit_code


def report_unexpected(exc: BaseException) -> int:
    lines = str(exc).strip().splitlines()
    detail = f": {lines[0]}" if lines else ""
    plain(err(), f"error: unexpected {type(exc).__name__}{detail} (PODIUM_DEBUG=1 shows more)")
    return EXIT_FAILURE


def run_cli(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the exit code; never lets a traceback through."""
    flags_without_type()
    missing_values_without_pydantic()
    command = get_command(app)
    try:
        result = command.main(
            args=list(argv) if argv is not None else None,
            prog_name="podium",
            standalone_mode=False,
        )
    except PodiumError as exc:
        return report_podium_error(exc)
    except typer.TyperException as exc:
        return report_usage_error(exc)
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        plain(err(), "interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:
        from podium.settings import debug_enabled

        if debug_enabled():
            raise
        return report_unexpected(exc)
    return result if isinstance(result, int) else 0


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    sys.exit(run_cli(argv))


if __name__ == "__main__":
    main()
