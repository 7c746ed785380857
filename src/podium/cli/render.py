"""Shared rendering for the CLI: consoles, status colours, times, notes, event lines, JSON.

Everything here renders the service views (``podium.service.views``), which the CLI gets
from the local database or from a server alike, so both modes print the same thing.
Human output goes through rich (colours only on a terminal); machine output (``--json``) is
plain JSON written straight to stdout so that rich never wraps or highlights it.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.json import JSON
from rich.text import Text

if TYPE_CHECKING:  # annotations only: every command imports this module at start-up
    from podium.domain.definition import Definition
    from podium.service.views import EventView, RunSummary, StepView

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
    """Print ``line`` as is: no markup, no emoji codes, no highlighting, no wrapping."""
    console.print(line, markup=False, emoji=False, highlight=False, soft_wrap=True)


def fields(console: Console, lines: list[tuple[str, str]]) -> None:
    """One ``name  value`` line each, the values in one column (``podium agents show``)."""
    width = max(len(name) for name, _ in lines)
    for name, value in lines:
        plain(console, f"{name:<{width}}  {value}")


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


def run_duration(run: RunSummary, now: datetime) -> float | None:
    """Seconds from start to end, or to ``now`` while the run goes on."""
    start = run.startedAt or run.createdAt
    return between(start, run.endedAt or (None if run.status in RUN_TERMINAL else now))


def step_elapsed(step: StepView, now: datetime) -> float | None:
    """Seconds of the current attempt: live while it runs, final once it ended."""
    if step.status == "running":
        return between(step.startedAt, now)
    if step.endedAt is not None:
        return between(step.startedAt, step.endedAt)
    return None


def run_label(run: RunSummary) -> str:
    return f"{run.definition}@{run.version}"


def error_text(error: dict[str, Any] | None) -> str:
    """``code: message`` of a stored step or run error."""
    if not error:
        return ""
    code = error.get("code")
    message = error.get("message") or ""
    return f"{code}: {message}" if code else str(message)


def run_error_text(error: dict[str, Any]) -> str:
    """A run's error, naming the step that caused it."""
    where = f"step {error['stepId']}: " if error.get("stepId") else ""
    return where + error_text(error)


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


def attempt_text(step: StepView, definition: Definition | None) -> str:
    limit = max_attempts(definition, step.stepId)
    return f"{step.attempt}/{limit}" if limit else str(step.attempt)


def _waiting_for_retry(step: StepView) -> bool:
    """The step's current attempt is a retry that has not started (pending or queued)."""
    retry = (step.metadata.get("runtime") or {}).get("retry")
    return (
        isinstance(retry, dict)
        and retry.get("attempt") == step.attempt
        and step.status in ("pending", "queued", "aborted")
    )


def attempts_made(step: StepView) -> int:
    """How many attempts of the step ran (a retry still waiting is not one of them)."""
    if step.status in ("pending", "queued") or _waiting_for_retry(step):
        return max(step.attempt - 1, 0)
    return step.attempt


def step_note(
    step: StepView,
    now: datetime,
    *,
    run_status: str | None = None,
    progress: str | None = None,
) -> str:
    """A short explanation of where the step stands (``run_status``: its run's status, so
    that a step left waiting by a failed run says so; ``progress``: the agent's last word)."""
    if step.status == "failed":
        return error_text(step.error)
    if run_status in ("failed", "aborted") and step.status in ("pending", "queued"):
        made = attempts_made(step)
        last = (step.metadata.get("runtime") or {}).get("retry") or {}
        after = f" after attempt {made} failed: {error_text(last.get('lastError'))}" if made else ""
        return f"not started: the run {run_status}{after}"
    if step.status == "running" and progress:
        return progress
    if step.status == "pending":
        retry = (step.metadata.get("runtime") or {}).get("retry")
        if isinstance(retry, dict) and step.nextRetryAt is not None:
            wait = (step.nextRetryAt - now).total_seconds()
            when = f"in {format_duration(wait)}" if wait > 0 else "now"
            last = error_text(retry.get("lastError"))
            return f"attempt {retry.get('attempt', step.attempt)} {when} after {last}"
        return "waiting for dependencies"
    if step.status == "queued":
        return "waiting for a worker" if step.attempt <= 1 else "retry waiting for a worker"
    if step.status == "running":
        return f"on {step.leaseOwner}" if step.leaseOwner else ""
    if step.status in ("completed", "skipped"):
        return short_json(step_output_value(step.output))
    if step.status == "aborted":
        return "run aborted"
    return ""


def _event_detail(event: EventView, kind: str) -> tuple[str, str]:
    """The detail text of an event line, and the kind to show (``retry`` for a scheduled
    retry)."""
    data = event.data
    if event.type.startswith("orchestration.child."):  # issue 11
        return _child_event_detail(event.type.rsplit(".", 1)[-1], data)
    if event.type == "orchestration.run.created":
        steps = data.get("steps") or []
        return f"{data.get('definition')}@{data.get('version')} ({len(steps)} steps)", kind
    if event.type == "orchestration.run.failed":
        return run_error_text(data.get("error") or {}), kind
    if event.type == "orchestration.run.aborted":
        reason = f": {data['reason']}" if data.get("reason") else ""
        return f"by {data.get('actor')}{reason}", kind
    if event.type == "orchestration.checkpoint.requested":
        return approval_line(data), "checkpoint"
    if event.type == "orchestration.checkpoint.resolved":
        note = f": {data['note']}" if data.get("note") else ""
        return f"{data.get('decision')} by {data.get('actor')}{note}", "decided"
    if event.type == "orchestration.recovery.action":
        note = f": {data['note']}" if data.get("note") else ""
        return f"{data.get('action')} by {data.get('actor')}{note}", "recovery"
    if kind == "updated":
        return f"{data.get('previousStatus')} -> {data.get('status')}", kind
    if kind == "running":
        return f"attempt {data.get('attempt')} on {data.get('workerId')}", kind
    if kind == "completed" and event.stepId and data.get("approvalId"):
        return f"approved: {short_json(step_output_value(data.get('output')))}", kind
    if kind == "checkpoint_pending" and data.get("attempt") is not None:
        output = short_json(step_output_value(data.get("output")))
        return f"attempt {data.get('attempt')}: {output}", kind
    if kind == "completed" and event.stepId:
        output = short_json(step_output_value(data.get("output")))
        if data.get("cached"):  # step cache (issue 12): served without calling the agent
            return f"cached (hit {data['cache'].get('hits')}): {output}", kind
        return f"attempt {data.get('attempt')}: {output}", kind
    if kind == "retry_scheduled" and data.get("approvalId"):
        reason = str(data.get("reason") or "").replace("_", " ")
        return f"{reason} (generation {data.get('generation')})", "retry"
    if kind == "retry_scheduled":
        at = format_clock(parse_iso(data.get("nextRetryAt")))
        failed = f"attempt {data.get('attempt')} failed: {error_text(data.get('error'))}"
        return f"{failed}; attempt {data.get('nextAttempt')} at {at}", "retry"
    if kind == "failed" and event.stepId:
        return f"attempt {data.get('attempt')} failed: {error_text(data.get('error'))}", kind
    if kind == "skipped":
        return short_json(step_output_value(data.get("output"))), kind
    if kind == "progress":
        return str(data.get("message") or ""), kind
    if kind == "queued" and data.get("reason"):
        return str(data["reason"]).replace("_", " "), kind
    return "", kind


def _child_event_detail(kind: str, data: dict[str, Any]) -> tuple[str, str]:
    """Events of a child run on its parent's log: ``child started`` and so on."""
    child = f"run {data.get('childRunId')}"
    if kind == "started":
        return f"{child} ({data.get('definition')}@{data.get('version')})", "child started"
    if kind == "failed":
        return f"{child} {data.get('status')}: {error_text(data.get('error'))}", "child failed"
    return child, f"child {kind}"


def approval_line(approval: dict[str, Any]) -> str:
    """A pending approval (a view or a ``checkpoint.requested`` event's data) and the
    command that decides it."""
    approval_id = approval.get("approvalId")
    if approval.get("kind") == "input":
        command = f'podium approvals respond {approval_id} --text "..."'
    else:
        command = f"podium approvals approve {approval_id}"
    return f"waiting for approval: {approval.get('question')}  decide: {command}"


def event_line(event: EventView) -> str:
    """One line describing an event, for logs and non-terminal progress."""
    subject = event.stepId or "run"
    detail, kind = _event_detail(event, event.type.rsplit(".", 1)[-1])
    return f"{format_clock(event.timestamp)}  {subject:<12} {kind:<16} {detail}".rstrip()


# -- JSON -----------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if callable(getattr(value, "model_dump", None)):  # a pydantic model
        return value.model_dump(mode="json")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def dumps(value: Any) -> str:
    """Indented JSON of a value, a view or a list of views."""
    return json.dumps(value, indent=2, default=_json_default, ensure_ascii=False)


def write_json(value: Any) -> None:
    """Machine output: indented JSON on stdout (views as the API sends them)."""
    sys.stdout.write(dumps(value) + "\n")
    sys.stdout.flush()


def print_json_value(console: Console, value: Any) -> None:
    """Human output of a JSON value: highlighted on a terminal, plain otherwise."""
    if console.is_terminal:
        console.print(JSON(dumps(value)))
    else:
        plain(console, dumps(value))
