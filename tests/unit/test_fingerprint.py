"""Step cache fingerprints (spec section 9): golden vectors and what changes them."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from podium.domain.definition import parse_definition
from podium.domain.fingerprint import Unfingerprintable, canonical_input, fingerprint
from podium.engine.cache import effective_settings

BASE: dict[str, Any] = {
    "agent": "echo",
    "agent_version": "podium.agents.demo:echo",
    "definition": "brief",
    "step": "research",
}
INPUT = {"b": [3, 1, 2], "a": {"y": 1.0, "x": "é"}}


def test_golden_vector_is_the_sha256_of_the_documented_envelope() -> None:
    """The format is pinned: a change to it would silently miss every stored entry."""
    envelope = (
        '{"agent":"echo","agentVersion":"podium.agents.demo:echo","cacheVersion":null,'
        '"definition":"brief","input":{"a":{"x":"é","y":1},"b":[3,1,2]},"step":"research","v":1}'
    )
    expected = hashlib.sha256(envelope.encode("utf-8")).hexdigest()
    assert expected == "be5ee611cfb8a1ea5da4d0229621f7d9e6776ba7fa0a284aa01ba72d29613b15"
    assert fingerprint(INPUT, **BASE) == expected


def test_key_order_and_number_form_do_not_matter() -> None:
    reordered = {"a": {"x": "é", "y": 1}, "b": [3, 1, 2]}
    assert fingerprint(reordered, **BASE) == fingerprint(INPUT, **BASE)


@pytest.mark.parametrize(
    "change",
    [
        {"agent": "other"},
        {"agent_version": "podium.agents.demo:upper"},
        {"agent_version": None},
        {"definition": "brief2"},
        {"step": "draft"},
        {"cache_version": "2"},
    ],
)
def test_every_included_field_changes_the_fingerprint(change: dict[str, Any]) -> None:
    assert fingerprint(INPUT, **{**BASE, **change}) != fingerprint(INPUT, **BASE)


def test_an_input_change_changes_it_unless_the_key_is_excluded() -> None:
    changed = {**INPUT, "requestedAt": "2026-12-01T10:00:00Z"}
    assert fingerprint(changed, **BASE) != fingerprint(INPUT, **BASE)
    assert fingerprint(changed, **BASE, exclude=["requestedAt"]) == fingerprint(INPUT, **BASE)
    assert fingerprint({**INPUT, "b": [3, 1, 4]}, **BASE) != fingerprint(INPUT, **BASE)


def test_sort_arrays_makes_array_order_irrelevant() -> None:
    shuffled = {**INPUT, "b": [2, 3, 1]}
    assert fingerprint(shuffled, **BASE) != fingerprint(INPUT, **BASE)
    assert fingerprint(shuffled, **BASE, sort_arrays=True) == fingerprint(
        INPUT, **BASE, sort_arrays=True
    )


def test_booleans_are_not_numbers() -> None:
    assert canonical_input({"x": True}) == {"x": True}
    assert fingerprint({"x": True}, **BASE) != fingerprint({"x": 1}, **BASE)


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"x": float("nan")}, "input.x"),
        ({"x": [1, float("inf")]}, "input.x[1]"),
        ({"x": b"bytes"}, "input.x"),
        ({"x": {1: "a"}}, "input.x"),
    ],
)
def test_what_json_cannot_express_is_unfingerprintable(value: Any, path: str) -> None:
    with pytest.raises(Unfingerprintable) as caught:
        fingerprint(value, **BASE)
    assert caught.value.path == path


def test_step_cache_fields_override_the_definition_default_one_by_one() -> None:
    defn = parse_definition(
        """
metadata: {name: c, version: 1.0.0}
orchestration:
  execution: {caching: {enabled: true, ttlSeconds: 60}}
  steps:
    - {id: a, agent: echo, cache: {exclude: [t], version: "2"}}
    - {id: b, agent: echo, cache: {enabled: false}}
    - {id: c, agent: echo}
"""
    )
    # as stored and read back (every field present, unset ones null): the same settings
    stored = parse_definition(defn.model_dump(mode="json"))
    for step in ("a", "b", "c"):
        assert effective_settings(stored, step) == effective_settings(defn, step)
    a = effective_settings(defn, "a")
    assert (a.enabled, a.ttlSeconds, a.exclude, a.version) == (True, 60, ["t"], "2")
    assert effective_settings(defn, "b").enabled is False
    assert effective_settings(defn, "c").ttlSeconds == 60
