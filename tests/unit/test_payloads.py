"""What an agent output must be before it is stored (B1): plain JSON within limits, with a
message that names the path of the first problem."""

from __future__ import annotations

import json
from typing import Any

import pytest

from podium.domain.payloads import PayloadInvalid, PayloadLimits, check_payload

LIMITS = PayloadLimits(max_depth=64, max_bytes=4 * 1024 * 1024)


def nested(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels - 1):
        value = {"a": value}
    return {"a": value} if levels else value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"items": [1, 2, 3, float("nan")]}, "output.items[3]: NaN is not valid JSON"),
        ({"x": float("inf")}, "output.x: Infinity is not valid JSON"),
        ([float("-inf")], "output[0]: -Infinity is not valid JSON"),
        ({"text": "a\x00b"}, "output.text: contains a NUL character"),
        ({"a\x00": 1}, "contains a NUL character"),
        ({"bad key": {"s": "\ud800"}}, 'output["bad key"].s: contains a lone surrogate'),
        ({"tags": {1, 2}}, "output.tags: a set is not JSON-serialisable"),
        ({"when": object()}, "output.when: a object is not JSON-serialisable"),
        ({1: "x"}, "output: key 1 is a int; JSON keys are strings"),
    ],
)
def test_values_that_cannot_be_stored_are_named_by_path(value: Any, message: str) -> None:
    with pytest.raises(PayloadInvalid) as caught:
        check_payload(value, LIMITS)
    assert message in str(caught.value)


def test_depth_is_counted_in_levels_of_objects_and_arrays() -> None:
    check_payload(nested(64), LIMITS)
    with pytest.raises(PayloadInvalid, match="nests deeper than the limit of 64 levels"):
        check_payload(nested(65), LIMITS)


def test_a_value_far_deeper_than_the_stack_is_refused_not_a_recursion_error() -> None:
    with pytest.raises(PayloadInvalid, match="nests deeper"):
        check_payload(nested(100_000), LIMITS)


def test_size_is_measured_as_utf8_json() -> None:
    limits = PayloadLimits(max_depth=64, max_bytes=1000)
    small = {"text": "é" * 400}  # 800 bytes of UTF-8 plus the envelope
    check_payload(small, limits)
    big = {"text": "é" * 600}
    with pytest.raises(PayloadInvalid) as caught:
        check_payload(big, limits)
    size = len(json.dumps(big, ensure_ascii=False).encode())
    assert str(caught.value) == f"output: is {size} bytes as JSON, more than the limit of 1000"


@pytest.mark.parametrize(
    "value",
    [None, True, 0, -1.5, 10**30, "text", [], {}, {"a": [1, {"b": None}], "c": "ü"}, (1, 2)],
)
def test_plain_json_passes(value: Any) -> None:
    check_payload(value, LIMITS)


def test_the_first_problem_in_document_order_is_named() -> None:
    """Problems deep in an early member come before problems in later members."""
    value = {"a": {"x": float("nan")}, "b": float("inf"), "c": ["\x00"]}
    with pytest.raises(PayloadInvalid) as caught:
        check_payload(value, LIMITS)
    assert str(caught.value) == "output.a.x: NaN is not valid JSON"


@pytest.mark.parametrize(
    "value", [{"é": "ü" * 3, "list": ["ß", {"k": "ñ"}]}, ["日本語"], "ü", {"t": (1, "é")}]
)
def test_non_ascii_text_and_tuples_pass(value: Any) -> None:
    check_payload(value, LIMITS)
