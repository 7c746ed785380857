"""The outgoing message and the normalization of results, without a server."""

from __future__ import annotations

from typing import Any

import pytest
from a2a.helpers import new_data_part, new_raw_part, new_text_part, new_url_part
from a2a.types import Artifact, Message, Role, Task, TaskState, TaskStatus

from podium.agents.a2a.results import (
    build_message,
    completed_response,
    input_text,
    merge_data,
    normalize_part,
    settled_error,
    state_name,
    struct_to_dict,
    whole_numbers,
)
from tests.agents.conftest import FakeStep


@pytest.mark.parametrize(
    ("input", "text"),
    [
        ("plain", "plain"),
        ({"userMessage": "um", "text": "t"}, "um"),
        ({"text": "t", "other": 1}, "t"),
        ({"text": 5, "b": [1]}, '{"b": [1], "text": 5}'),
        ([1, "é"], '[1, "é"]'),
        (None, "null"),
    ],
)
def test_the_text_part_is_the_message_the_text_or_the_json(input: Any, text: str) -> None:
    assert input_text(input) == text


def test_the_message_carries_text_data_and_the_idempotency_key() -> None:
    step = FakeStep()
    message = build_message({"text": "hi", "n": 2}, step.context(attempt=3))
    assert message.role == Role.ROLE_USER
    assert message.message_id == f"{step.key}:3"
    assert [normalize_part(p) for p in message.parts] == [
        {"kind": "text", "text": "hi"},
        {"kind": "data", "data": {"text": "hi", "n": 2}},
    ]
    metadata = struct_to_dict(message.metadata)
    assert metadata["idempotencyKey"] == step.key
    assert metadata["podium"]["attempt"] == 3


def test_a_string_input_has_no_data_part_and_other_values_are_wrapped() -> None:
    context = FakeStep().context()
    assert len(build_message("just text", context).parts) == 1
    listed = build_message([1, 2], context)
    assert normalize_part(listed.parts[1]) == {"kind": "data", "data": {"input": [1, 2]}}


def test_whole_numbers_come_back_as_ints() -> None:
    assert whole_numbers({"a": 1.0, "b": [2.0, 2.5], "c": "3"}) == {"a": 1, "b": [2, 2.5], "c": "3"}


@pytest.mark.parametrize(
    ("values", "merged"),
    [
        ([], None),
        ([[1]], [1]),
        ([{"a": 1}, {"a": 2, "b": 3}], {"a": 2, "b": 3}),
        ([{"a": 1}, [2]], [{"a": 1}, [2]]),
    ],
)
def test_data_parts_merge(values: list[Any], merged: Any) -> None:
    assert merge_data(values) == merged


def test_file_parts_are_normalized() -> None:
    assert normalize_part(new_url_part("http://f", "text/csv", "f.csv")) == {
        "kind": "file",
        "url": "http://f",
        "mediaType": "text/csv",
        "filename": "f.csv",
    }
    assert normalize_part(new_raw_part(b"\x00\x01")) == {"kind": "file", "bytes": "AAE="}


def test_without_artifacts_the_output_is_the_final_message() -> None:
    said = Message(role=Role.ROLE_AGENT, parts=[new_text_part("answer"), new_data_part({"k": 1})])
    task = Task(
        id="t",
        context_id="c",
        status=TaskStatus(state=TaskState.TASK_STATE_COMPLETED, message=said),
    )
    result = completed_response(
        slug="s", card_version="1", task=task, message=None, started=0.0, ended=0.5
    )
    assert result["output"] == {"text": "answer", "data": {"k": 1}}
    assert result["message"] == "answer"
    assert result["timings"] == {"durationMs": 500.0}


def test_the_final_message_falls_back_to_the_last_agent_message_of_the_history() -> None:
    task = Task(
        id="t",
        status=TaskStatus(state=TaskState.TASK_STATE_COMPLETED),
        artifacts=[Artifact(artifact_id="a", parts=[new_text_part("out")])],
        history=[
            Message(role=Role.ROLE_USER, parts=[new_text_part("question")]),
            Message(role=Role.ROLE_AGENT, parts=[new_text_part("first")]),
            Message(role=Role.ROLE_AGENT, parts=[new_text_part("last")]),
        ],
    )
    result = completed_response(
        slug="s", card_version=None, task=task, message=None, started=0.0, ended=0.0
    )
    assert result["message"] == "last"
    assert result["output"] == {"text": "out", "data": None}


def test_an_unexpected_settled_state_is_a_retryable_failure() -> None:
    task = Task(id="t", status=TaskStatus(state=TaskState.TASK_STATE_WORKING))
    error = settled_error(task, slug="s")
    assert (error.code, error.retryable) == ("agent_execution_error", True)
    assert state_name(TaskState.TASK_STATE_INPUT_REQUIRED) == "INPUT_REQUIRED"
