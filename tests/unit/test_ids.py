"""Identifiers are UUIDv7: version 7, the RFC 4122 variant, ordered by their millisecond."""

from __future__ import annotations

import time
import uuid

from podium.domain.ids import new_id, new_id_after


def test_new_ids_are_uuid7_of_this_millisecond_with_random_bits() -> None:
    before = time.time_ns() // 1_000_000
    ids = [new_id() for _ in range(2000)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    variants = set()
    for text in ids:
        value = uuid.UUID(text)
        assert str(value) == text  # canonical: lowercase, dashed
        assert value.version == 7
        assert value.variant == uuid.RFC_4122
        assert before <= value.int >> 80 <= after
        variants.add(text[19])
    assert variants == set("89ab")  # the two random bits below the variant vary


def test_ids_sort_by_their_millisecond() -> None:
    first = new_id()
    deadline = time.monotonic() + 1.0
    later = new_id()
    while later[:13] == first[:13] and time.monotonic() < deadline:
        later = new_id()
    assert later[:13] > first[:13]
    assert later > first


def test_an_id_after_a_floor_sorts_after_it_even_within_one_millisecond() -> None:
    floor = new_id()
    highest_this_ms = floor[:19] + "bfff-ffffffffffff"  # every random bit set but one
    for f in (floor, highest_this_ms):
        assert new_id_after(f) > f
