"""The ``podium`` command: assembles the commands and turns every error into one line.

Exit codes: 0 success; 1 a failed or aborted run, an invalid definition under ``validate``,
or an operational error; 2 a usage or validation error; 130 interrupted.
``PODIUM_DEBUG=1`` re-raises unexpected errors with their traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import typer
from typer.main import get_command

from podium.cli import agents, definitions, keys, runs
from podium.cli.doctor import doctor_command
from podium.cli.migrate import migrate_command
from podium.cli.recovery import abort_command, retry_command, skip_command
from podium.cli.render import err, plain
from podium.cli.run import run_command
from podium.cli.serve import serve_command
from podium.cli.worker import worker_command
from podium.errors import ConfigurationError, InvalidInput, PodiumError

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

app = typer.Typer(
    name="podium",
    help="Podium: durable orchestration of AI-agent DAGs on SQLite or PostgreSQL.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("run")(run_command)
app.add_typer(runs.app, name="runs")
app.add_typer(definitions.app, name="definitions")
app.add_typer(agents.app, name="agents")
app.command("worker")(worker_command)
app.command("retry")(retry_command)
app.command("skip")(skip_command)
app.command("abort")(abort_command)
app.command("migrate")(migrate_command)
app.command("serve")(serve_command)
app.add_typer(keys.app, name="keys")
app.command("doctor")(doctor_command)


def exit_code_for(exc: PodiumError) -> int:
    """Bad input and bad configuration are usage errors; the rest are operational."""
    return EXIT_USAGE if isinstance(exc, InvalidInput | ConfigurationError) else EXIT_FAILURE


def report_podium_error(exc: PodiumError) -> int:
    """One ``error:`` line, then one indented line per issue."""
    plain(err(), f"error: {exc.message}")
    if isinstance(exc, InvalidInput):
        for issue in exc.issues:
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
        if os.environ.get("PODIUM_DEBUG") == "1":
            raise
        return report_unexpected(exc)
    return result if isinstance(result, int) else 0


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    sys.exit(run_cli(argv))


if __name__ == "__main__":
    main()
