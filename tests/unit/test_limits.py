"""L3/T2: the one place of JSON value limits (``podium.domain.limits``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from podium.domain.limits import (
    READABLE_DEPTH,
    bounded_members,
    check_json_value,
    readable_json,
)
from podium.errors import ValueInvalid, ValueTooDeep, ValueTooLarge


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def test_the_size_is_that_of_compact_json() -> None:
    """L3: the measured size is exact for plain values."""
    value = {"a": [1, 2.5, "é", None, True, False], "b": {"c": "x" * 100}}
    expected = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    assert check_json_value(value) == expected


def test_depth_is_checked_iteratively_and_names_the_path() -> None:
    """L3: 64 levels pass, 65 fail with the path; 100 000 levels do not recurse."""
    check_json_value(nested(64), max_depth=64)
    with pytest.raises(ValueTooDeep) as too_deep:
        check_json_value({"x": nested(65)}, path="body", max_depth=64)
    assert too_deep.value.path.startswith("body.x[0][0]")
    with pytest.raises(ValueTooDeep):
        check_json_value(nested(100_000))


def test_size_stops_early_and_non_json_values_are_named() -> None:
    """L3: size, NaN, NUL and non-JSON types each give a located error."""
    with pytest.raises(ValueTooLarge):
        check_json_value(["x" * 1000] * 10_000, max_bytes=10_000)
    for bad, where in (
        ({"a": [1, float("nan")]}, "a[1]"),
        ({"a": "\x00"}, "a"),
        ({"a": {1, 2}}, "a"),
    ):
        with pytest.raises(ValueInvalid) as invalid:
            check_json_value(bad)
        assert invalid.value.path == where, invalid.value


def test_readable_json_clips_only_what_is_too_deep() -> None:
    """L3: reading back never fails: parts below the depth become a marker with their size."""
    shallow = {"a": nested(5)}
    assert readable_json(shallow) is shallow
    clipped = readable_json(nested(300), max_depth=10)
    inner = clipped
    for _ in range(10):
        inner = inner[0]
    assert inner["truncated"] is True
    assert inner["bytes"] == len(json.dumps(nested(290), separators=(",", ":")))


def test_bounded_members_truncates_large_members_with_their_size() -> None:
    """T2: ``{"truncated": true, "bytes": N}`` replaces members above the limit."""
    big = {"text": "x" * 5000}
    data = bounded_members({"status": "completed", "output": big}, max_value_bytes=1000)
    assert data == {
        "status": "completed",
        "output": {"truncated": True, "bytes": len(json.dumps(big, separators=(",", ":")))},
    }


@pytest.mark.parametrize("text", ["x", "é" * 10])
def test_bounded_members_keeps_small_data_as_it_is(text: str) -> None:
    data = {"status": "completed", "output": {"items": [1, 2.5, None, True, text]}}
    bounded = bounded_members(data, max_value_bytes=1000)
    assert bounded == data
    assert bounded is not data  # a new dict: the caller may add to it


def test_bounded_members_clips_small_but_deep_members() -> None:
    """Few bytes, but deeper than a read can show: clipped although it is small."""
    deep = nested(READABLE_DEPTH + 5)
    bounded = bounded_members({"output": deep, "status": "completed"})
    assert bounded["status"] == "completed"
    inner = bounded["output"]
    for _ in range(READABLE_DEPTH):
        inner = inner[0]
    assert inner["truncated"] is True


def test_bounded_members_measures_utf8_bytes_not_characters() -> None:
    text = "é" * 600  # 600 characters, 1,200 bytes of UTF-8
    bounded = bounded_members({"output": text}, max_value_bytes=1000)
    assert bounded["output"] == {"truncated": True, "bytes": 1202}


def test_bounded_members_measures_values_json_cannot_encode() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    assert bounded_members({"at": when}) == {"at": when}
