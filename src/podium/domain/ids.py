"""Identifiers: time-ordered UUIDs so that new rows append to indexes and sort by creation."""

from __future__ import annotations

import os
import time
import uuid


def new_id() -> str:
    """A UUIDv7-shaped identifier (48-bit millisecond timestamp, then random bits)."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80 | rand
    # version 7 and RFC 4122 variant bits
    value = (value & ~(0xF << 76)) | (0x7 << 76)
    value = (value & ~(0x3 << 62)) | (0x2 << 62)
    return str(uuid.UUID(int=value))


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
