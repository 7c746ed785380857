"""Identifiers: time-ordered UUIDs so that new rows append to indexes and sort by creation."""

from __future__ import annotations

import os
import time
import uuid

_VARIANT = "89ab"  # the RFC 4122 variant's hex digit, by the two random bits below it


def new_id() -> str:
    """A UUIDv7-shaped identifier (48-bit millisecond timestamp, version 7, the RFC 4122
    variant, 74 random bits), as lowercase hex with dashes.

    Every event and delivery row takes one, several per step: built as text directly, this
    costs half of going through ``uuid.UUID``'s checks and formatting."""
    rand = os.urandom(10).hex()
    ms = f"{time.time_ns() // 1_000_000 & 0xFFFFFFFFFFFF:012x}"
    variant = _VARIANT[int(rand[3], 16) & 3]
    return f"{ms[:8]}-{ms[8:]}-7{rand[:3]}-{variant}{rand[4:7]}-{rand[7:19]}"


def new_id_after(floor: str) -> str:
    """A new identifier that sorts after ``floor`` (another :func:`new_id`).

    Child runs take ids after their parent's, so that id order is also ancestor-first
    order: locking runs in id order then never waits on a descendant while holding an
    ancestor the other way round (see docs/architecture.md, "Parent and child runs").
    """
    candidate = new_id()
    if candidate > floor:
        return candidate
    # same millisecond and lower random bits (or the clock stepped back): the next id up,
    # within the 62 random bits below the variant
    value = uuid.UUID(floor).int
    if value & ((1 << 62) - 1) != (1 << 62) - 1:
        return str(uuid.UUID(int=value + 1))
    while candidate <= floor:  # all random bits set: wait for the clock to pass floor's ms
        time.sleep(0.001)
        candidate = new_id()
    return candidate
