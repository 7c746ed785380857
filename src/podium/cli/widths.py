"""Tables that stay readable in a narrow terminal (80 columns, and 60 where possible).

What gives way, in order: the note (error or waiting reason) column, then other free text
(definition names, agents, workers), then ids, which shorten to a prefix that is still unique
among the rows shown (and that ``podium runs show`` accepts). Status and step names are never
cut.
"""

from __future__ import annotations

from collections.abc import Sequence

GAP = 2
"""Spaces between two columns of the CLI's tables (``box=None, pad_edge=False``)."""
ID_PREFIX = 8
"""The shortest prefix an id shortens to."""


def unique_prefixes(ids: Sequence[str], minimum: int = ID_PREFIX) -> list[str]:
    """Each id cut to the shortest length (at least ``minimum``) at which all are distinct."""
    distinct = set(ids)
    longest = max((len(i) for i in distinct), default=0)
    for length in range(minimum, longest + 1):
        if len({i[:length] for i in distinct}) == len(distinct):
            return [i[:length] for i in ids]
    return list(ids)


def column_width(header: str, cells: Sequence[str]) -> int:
    """The width a column needs to show ``header`` and every cell whole."""
    return max([len(header), *(len(c) for c in cells)])


def left_for(width: int, used: Sequence[int]) -> int:
    """The room one more column gets after columns of widths ``used`` (with the gaps)."""
    return width - sum(used) - GAP * len(used)
