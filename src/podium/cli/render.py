"""Shared rendering for the CLI: consoles, status colours, times, notes, event lines, JSON.

Human output goes through rich (colours only on a terminal); machine output (``--json``) is
plain JSON written straight to stdout so that rich never wraps or highlights it.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from rich.console import Console
from rich.json import JSON
from rich.text import Text

from podium.domain.definition import Definition
from podium.storage.records import AttemptRecord, EventRecord, RunRecord, StepRecord

RUN_TERMINAL = frozenset({"completed", "failed", "aborted"})

STATUS_STYLES: dict[str, str] = {
    "planning": "dim",
    "pending": "dim",
    "queued": "cyan",
    "running": "bold yellow",
    "checkpoint": "magenta",
    "checkpoint_pending": "magenta",
    "completed": "bold green",
    "failed": "bold red",
    "skipped": "dim",
    "aborted": "red",
}

# Piped output is not wrapped at rich's default 80 columns: tables keep one row per line.
_PIPE_WIDTH = 200


def _console(stderr: bool) -> Console:
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(stderr=stderr, highlight=False, width=_PIPE_WIDTH)
    return console


@functools.cache
def out() -> Console:
    """The stdout console."""
    return _console(stderr=False)


@functools.cache
def err() -> Console:
    """The stderr console (errors, warnings, logs)."""
    return _console(stderr=True)


def plain(console: Console, line: str) -> None:
    """Print ``line`` as is: no markup, no highlighting, no wrapping."""
    console.print(line, markup=False, highlight=False, soft_wrap=True)


# -- values ---------------------------------------------------------------------------------


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


def now_utc() -> datetime:
    return datetime.now(UTC)


def format_duration(seconds: float | None) -> str:
    """``8 ms``, ``1.53 s``, ``2m 05s``, ``1h 02m``; ``-`` for unknown."""
    if seconds is None:
        return "-"
    seconds = max(seconds, 0.0)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def format_clock(moment: datetime | None) -> str:
    """Local wall-clock time with milliseconds, for event lines."""
    if moment is None:
        return "-"
    return moment.astimezone().strftime("%H:%M:%S.%f")[:-3]


def format_datetime(moment: datetime | None) -> str:
    """Local date and time to the second, for lists."""
    if moment is None:
        return "-"
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def parse_iso(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def run_duration(run: RunRecord, now: datetime) -> float | None:
    """Seconds from start to end, or to ``now`` while the run goes on."""
    start = run.started_at or run.created_at
    return between(start, run.ended_at or (None if run.status in RUN_TERMINAL else now))


def step_elapsed(step: StepRecord, now: datetime) -> float | None:
    """Seconds of the current attempt: live while it runs, final once it ended."""
    if step.status == "running":
        return between(step.started_at, now)
    if step.ended_at is not None:
        return between(step.started_at, step.ended_at)
    return None


def run_label(run: RunRecord) -> str:
    return f"{run.definition_name}@{run.definition_version}"


def error_text(error: dict[str, Any] | None) -> str:
    """``code: message`` of a stored step or run error."""
    if not error:
        return ""
    code = error.get("code")
    message = error.get("message") or ""
    return f"{code}: {message}" if code else str(message)


def short_json(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=_json_default, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def step_output_value(output: Any) -> Any:
    """The agent's own output inside a normalized result (or the value itself)."""
    if isinstance(output, dict) and "output" in output and "success" in output:
        return output["output"]
    return output


def max_attempts(definition: Definition | None, step_id: str) -> int | None:
    if definition is None:
        return None
    try:
        return definition.retry_policy(step_id).maxAttempts
    except KeyError:
        return None


def attempt_text(step: StepRecord, definition: Definition | None) -> str:
    limit = max_attempts(definition, step.step_id)
    return f"{step.attempt}/{limit}" if limit else str(step.attempt)


def step_note(step: StepRecord, now: datetime) -> str:
    """A short explanation of where the step stands."""
    if step.status == "failed":
        return error_text(step.error)
    if step.status == "pending":
        retry = (step.metadata.get("runtime") or {}).get("retry")
        if isinstance(retry, dict) and step.available_at is not None:
            wait = (step.available_at - now).total_seconds()
            when = f"in {format_duration(wait)}" if wait > 0 else "now"
            last = error_text(retry.get("lastError"))
            return f"attempt {retry.get('attempt', step.attempt)} {when} after {last}"
        return "waiting for dependencies"
    if step.status == "queued":
        return "waiting for a worker" if step.attempt <= 1 else "retry waiting for a worker"
    if step.status == "running":
        return f"on {step.lease_owner}" if step.lease_owner else ""
    if step.status == "completed":
        return short_json(step_output_value(step.output))
    if step.status == "aborted":
        return "run aborted"
    return ""


def event_line(event: EventRecord) -> str:
    """One line describing an event, for logs and non-terminal progress."""
    data = event.data
    subject = event.step_id or "run"
    kind = event.type.rsplit(".", 1)[-1]
    detail = ""
    if event.type == "orchestration.run.created":
        steps = data.get("steps") or []
        detail = f"{data.get('definition')}@{data.get('version')} ({len(steps)} steps)"
    elif event.type == "orchestration.run.failed":
        detail = error_text(data.get("error"))
        if data.get("error", {}) and data["error"].get("stepId"):
            detail = f"step {data['error']['stepId']}: {detail}"
    elif event.type == "orchestration.run.aborted":
        detail = f"by {data.get('actor')}" + (f": {data['reason']}" if data.get("reason") else "")
    elif kind == "updated":
        detail = f"{data.get('previousStatus')} -> {data.get('status')}"
    elif kind == "running":
        detail = f"attempt {data.get('attempt')} on {data.get('workerId')}"
    elif kind == "completed" and event.step_id:
        detail = f"attempt {data.get('attempt')}: " + short_json(
            step_output_value(data.get("output"))
        )
    elif kind == "retry_scheduled":
        at = format_clock(parse_iso(data.get("nextRetryAt")))
        detail = (
            f"attempt {data.get('attempt')} failed: {error_text(data.get('error'))}; "
            f"attempt {data.get('nextAttempt')} at {at}"
        )
        kind = "retry"
    elif kind == "failed" and event.step_id:
        detail = f"attempt {data.get('attempt')} failed: {error_text(data.get('error'))}"
    elif kind == "queued" and data.get("reason"):
        detail = str(data["reason"]).replace("_", " ")
    return f"{format_clock(event.timestamp)}  {subject:<12} {kind:<16} {detail}".rstrip()


# -- JSON -----------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, default=_json_default, ensure_ascii=False)


def write_json(value: Any) -> None:
    """Machine output: indented JSON on stdout."""
    sys.stdout.write(dumps(value) + "\n")
    sys.stdout.flush()


def print_json_value(console: Console, value: Any) -> None:
    """Human output of a JSON value: highlighted on a terminal, plain otherwise."""
    if console.is_terminal:
        console.print(JSON(dumps(value)))
    else:
        plain(console, dumps(value))


def run_json(run: RunRecord) -> dict[str, Any]:
    return {
        "id": run.id,
        "organizationSlug": run.organization_slug,
        "definition": run.definition_name,
        "version": run.definition_version,
        "status": run.status,
        "parameters": run.parameters,
        "outputs": run.outputs,
        "error": run.error,
        "parentRunId": run.parent_run_id,
        "createdAt": run.created_at,
        "startedAt": run.started_at,
        "endedAt": run.ended_at,
        "durationSeconds": run_duration(run, now_utc()),
    }


def attempt_json(attempt: AttemptRecord) -> dict[str, Any]:
    return {
        "attempt": attempt.attempt,
        "generation": attempt.generation,
        "outcome": attempt.outcome,
        "workerId": attempt.worker_id,
        "error": attempt.error,
        "startedAt": attempt.started_at,
        "endedAt": attempt.ended_at,
    }


def step_json(step: StepRecord, attempts: Sequence[AttemptRecord] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "stepRecordId": step.id,
        "stepId": step.step_id,
        "type": step.type,
        "agent": step.agent,
        "status": step.status,
        "attempt": step.attempt,
        "input": step.input,
        "output": step.output,
        "error": step.error,
        "queuedAt": step.queued_at,
        "startedAt": step.started_at,
        "endedAt": step.ended_at,
        "metadata": step.metadata,
    }
    if attempts is not None:
        data["attempts"] = [attempt_json(a) for a in attempts]
    return data
