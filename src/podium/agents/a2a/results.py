"""What goes to an A2A agent and what comes back: the message a step sends, and the
normalized result (or classified error) a task's final state becomes.

Outgoing message (one per step attempt):

* a text part: ``input`` itself when it is a string, else ``input.userMessage``, else
  ``input.text``, else the JSON of the input;
* a data part with the whole input (an object as is; any other JSON value as
  ``{"input": value}``, because A2A v0.3 data parts must be objects);
* metadata ``{"idempotencyKey", "podium": {runId, stepId, stepRecordId, organization,
  attempt, generation}}``;
* ``messageId`` ``<idempotencyKey>:<attempt>``: the same if one attempt has to send again
  (an agent can deduplicate it), new for every retry.

Normalized result of a ``COMPLETED`` task (the ``TaskResponse`` of spec section 7):

* ``artifacts``: ``[{"artifactId", "name", "description", "parts", "text"}]`` where each part
  is ``{"kind": "text", "text"}``, ``{"kind": "data", "data"}`` or ``{"kind": "file", "url" |
  "bytes" (base64), "mediaType", "filename"}`` and ``text`` joins the artifact's text parts
  with newlines;
* ``message``: the text of the final agent message (the terminal status message, else the
  last agent message in the history), or None;
* ``output``: ``{"text", "data"}``: ``text`` joins the text of every artifact with newlines
  (the final message's text when there are no artifacts); ``data`` is the one data part's
  value, or the data parts merged (later keys win) when they are all objects, or the list of
  their values, or None without data parts; numbers that are whole are ints again (A2A
  carries every number as a double);
* ``a2a``: ``{"taskId", "contextId", "state"}`` with ``state`` one of ``SUBMITTED``,
  ``WORKING``, ``COMPLETED``, ``FAILED``, ``CANCELED``, ``REJECTED``, ``INPUT_REQUIRED``,
  ``AUTH_REQUIRED``;
* ``agent``: ``{"slug", "cardVersion"}``; ``timings``: ``{"durationMs"}``.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from a2a.helpers import get_data_parts, new_data_part, new_text_part
from a2a.types import Artifact, Message, Part, Role, StreamResponse, Task, TaskState

from podium.agents.base import AgentContext, AgentError, task_response
from podium.domain.outcomes import ErrorCode

TERMINAL = frozenset(
    {
        TaskState.TASK_STATE_COMPLETED,
        TaskState.TASK_STATE_FAILED,
        TaskState.TASK_STATE_CANCELED,
        TaskState.TASK_STATE_REJECTED,
    }
)
INTERRUPTED = frozenset({TaskState.TASK_STATE_INPUT_REQUIRED, TaskState.TASK_STATE_AUTH_REQUIRED})
# states that end an attempt: the task will not move on without us
SETTLED = TERMINAL | INTERRUPTED


def state_name(state: int) -> str:
    """``COMPLETED`` for ``TASK_STATE_COMPLETED`` (and ``UNSPECIFIED`` for 0)."""
    return str(TaskState.Name(state)).removeprefix("TASK_STATE_")


# -- outgoing -----------------------------------------------------------------------------


def input_text(input: Any) -> str:
    """The text part of the message for ``input`` (module docstring)."""
    if isinstance(input, str):
        return input
    if isinstance(input, dict):
        for key in ("userMessage", "text"):
            value = input.get(key)
            if isinstance(value, str):
                return value
    return json.dumps(input, ensure_ascii=False, sort_keys=True, default=str)


def message_id(context: AgentContext) -> str:
    return f"{context.idempotency_key}:{context.attempt}"


def build_message(input: Any, context: AgentContext) -> Message:
    """The one message an attempt of the step sends (module docstring)."""
    parts = [new_text_part(input_text(input))]
    if input is not None and not isinstance(input, str):
        data = input if isinstance(input, dict) else {"input": input}
        # JSON round trip: only JSON values survive into the protobuf Value
        parts.append(new_data_part(json.loads(json.dumps(data, default=str))))
    return Message(
        message_id=message_id(context),
        role=Role.ROLE_USER,
        parts=parts,
        metadata={
            "idempotencyKey": context.idempotency_key,
            "podium": {
                "runId": context.run_id,
                "stepId": context.step_id,
                "stepRecordId": context.step_record_id,
                "organization": context.organization_slug,
                "attempt": context.attempt,
                "generation": context.generation,
            },
        },
    )


def answer_message(answer: Any, *, task_id: str, context_id: str | None) -> Message:
    """A person's answer to a task that asked for input (``{messageId, text?, data?,
    approvalId}``), as a message on the same task and context."""
    parts = []
    if answer.get("text"):
        parts.append(new_text_part(str(answer["text"])))
    if answer.get("data") is not None:
        data = answer["data"]
        parts.append(new_data_part(json.loads(json.dumps(data, default=str))))
    return Message(
        message_id=str(answer["messageId"]),
        task_id=task_id,
        context_id=context_id or "",
        role=Role.ROLE_USER,
        parts=parts,
        metadata={"podium": {"approvalId": answer.get("approvalId")}},
    )


# -- incoming -----------------------------------------------------------------------------


def whole_numbers(value: Any) -> Any:
    """``value`` with every float that is a whole number turned back into an int."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [whole_numbers(v) for v in value]
    return value


def struct_to_dict(struct: Any) -> dict[str, Any]:
    """A protobuf ``Struct`` (message or task metadata) as a dict, by the SDK's conversion
    of data parts."""
    carrier = Part()
    carrier.data.struct_value.CopyFrom(struct)
    value = whole_numbers(get_data_parts([carrier])[0])
    return value if isinstance(value, dict) else {}


def normalize_part(part: Part) -> dict[str, Any]:
    kind = part.WhichOneof("content")
    if kind == "text":
        return {"kind": "text", "text": part.text}
    if kind == "data":
        return {"kind": "data", "data": whole_numbers(get_data_parts([part])[0])}
    out: dict[str, Any] = {"kind": "file"}
    if kind == "url":
        out["url"] = part.url
    elif kind == "raw":
        out["bytes"] = base64.b64encode(part.raw).decode("ascii")
    if part.media_type:
        out["mediaType"] = part.media_type
    if part.filename:
        out["filename"] = part.filename
    return out


def parts_text(parts: list[dict[str, Any]]) -> str:
    return "\n".join(p["text"] for p in parts if p["kind"] == "text")


def normalize_artifact(artifact: Artifact) -> dict[str, Any]:
    parts = [normalize_part(p) for p in artifact.parts]
    return {
        "artifactId": artifact.artifact_id,
        "name": artifact.name or None,
        "description": artifact.description or None,
        "parts": parts,
        "text": parts_text(parts),
    }


def message_text(message: Message) -> str:
    return parts_text([normalize_part(p) for p in message.parts])


def final_message(task: Task) -> Message | None:
    """The agent's last word: the status message, else the last agent message in history."""
    if task.status.HasField("message"):
        status_message: Message = task.status.message
        return status_message
    agent_said: list[Message] = [m for m in task.history if m.role == Role.ROLE_AGENT]
    return agent_said[-1] if agent_said else None


def merge_data(values: list[Any]) -> Any:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    if all(isinstance(v, dict) for v in values):
        merged: dict[str, Any] = {}
        for v in values:
            merged.update(v)
        return merged
    return values


class TaskTracker:
    """A task as its event stream describes it (snapshot, status and artifact updates)."""

    def __init__(self, task: Task | None = None) -> None:
        self.task = Task()
        if task is not None:
            self.task.CopyFrom(task)

    def apply(self, event: StreamResponse) -> None:
        kind = event.WhichOneof("payload")
        if kind == "task":
            self.task.CopyFrom(event.task)
        elif kind == "status_update":
            update = event.status_update
            self.task.id = self.task.id or update.task_id
            self.task.context_id = self.task.context_id or update.context_id
            self.task.status.CopyFrom(update.status)
        elif kind == "artifact_update":
            update = event.artifact_update
            self.task.id = self.task.id or update.task_id
            self.task.context_id = self.task.context_id or update.context_id
            for existing in self.task.artifacts:
                if existing.artifact_id == update.artifact.artifact_id:
                    if update.append:
                        existing.parts.extend(update.artifact.parts)
                    else:
                        existing.CopyFrom(update.artifact)
                    break
            else:
                self.task.artifacts.append(update.artifact)

    @property
    def settled(self) -> bool:
        return bool(self.task.id) and self.task.status.state in SETTLED


def a2a_ref(task_id: str | None, context_id: str | None, state: str) -> dict[str, Any]:
    return {"taskId": task_id or None, "contextId": context_id or None, "state": state}


def completed_response(
    *,
    slug: str,
    card_version: str | None,
    task: Task | None,
    message: Message | None,
    started: float,
    ended: float,
) -> dict[str, Any]:
    """The normalized result of a completed task, or of a reply that is a message only."""
    artifacts = [normalize_artifact(a) for a in task.artifacts] if task is not None else []
    last = message if message is not None else (final_message(task) if task else None)
    last_parts = [normalize_part(p) for p in last.parts] if last is not None else []
    text_from = [a["text"] for a in artifacts if a["text"]]
    data_from = [p["data"] for a in artifacts for p in a["parts"] if p["kind"] == "data"]
    if not artifacts:
        text_from = [parts_text(last_parts)] if last_parts else []
        data_from = [p["data"] for p in last_parts if p["kind"] == "data"]
    response = task_response(
        slug=slug,
        output={"text": "\n".join(text_from), "data": merge_data(data_from)},
        artifacts=artifacts,
        message=parts_text(last_parts) if last is not None else None,
        card_version=card_version,
        started=started,
        ended=ended,
    )
    if task is not None:
        response["a2a"] = a2a_ref(task.id, task.context_id, state_name(task.status.state))
    else:
        context_id = message.context_id if message is not None else None
        response["a2a"] = a2a_ref(None, context_id, "COMPLETED")
    return response


# settled task states other than COMPLETED: (error code, message, retryable)
SETTLED_ERRORS: dict[int, tuple[ErrorCode, str, bool]] = {
    TaskState.TASK_STATE_FAILED: (
        ErrorCode.AGENT_EXECUTION_ERROR,
        "agent {slug!r} failed the task{suffix}",
        True,
    ),
    TaskState.TASK_STATE_REJECTED: (
        ErrorCode.AGENT_REJECTED,
        "agent {slug!r} rejected the task{suffix}",
        False,
    ),
    # canceled without our CancelTask: the agent gave up on it
    TaskState.TASK_STATE_CANCELED: (
        ErrorCode.AGENT_EXECUTION_ERROR,
        "task canceled by the agent",
        False,
    ),
    TaskState.TASK_STATE_INPUT_REQUIRED: (
        ErrorCode.AGENT_INPUT_REQUIRED,
        "agent {slug!r} needs more input{suffix}",
        False,
    ),
    TaskState.TASK_STATE_AUTH_REQUIRED: (
        ErrorCode.AGENT_AUTH_REQUIRED,
        "agent {slug!r} needs authorization{suffix}",
        False,
    ),
}


def settled_error(task: Task, *, slug: str) -> AgentError:
    """The error a task that ended in any settled state but ``COMPLETED`` becomes."""
    state = task.status.state
    name = state_name(state)
    last = final_message(task)
    said = message_text(last) if last is not None else ""
    details: dict[str, Any] = {"a2a": a2a_ref(task.id, task.context_id, name)}
    if said:
        details["agentMessage"] = said
    suffix = f": {said}" if said else ""
    known = SETTLED_ERRORS.get(state)
    if known is not None:
        code, says, retryable = known
        message = says.format(slug=slug, suffix=suffix)
        return AgentError(code, message, retryable=retryable, details=details)
    return AgentError(
        ErrorCode.AGENT_EXECUTION_ERROR,
        f"agent {slug!r} left the task in state {name}",
        retryable=True,
        details=details,
    )
