"""Named input patterns for the routing policy: regular expressions, some with a checksum.

The built-in patterns detect personal data. None is applied unless a routing rule names it
in ``inputPatterns`` (they are off by default):

* ``card-number``: 13 to 19 digits, optionally grouped by spaces or dashes, passing the
  Luhn check;
* ``us-ssn``: a US social security number ``123-45-6789`` (or with spaces), excluding
  numbers that are never issued (area 000, 666, 9xx; group 00; serial 0000);
* ``iban``: an IBAN (country code, check digits, 11 to 30 characters) passing mod-97;
* ``email``: an email address.

:func:`scan` walks a JSON value and reports the first pattern that matches and where
(``input.userMessage``, ``input.items[2]``), never the matched text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class InputPattern:
    """A named detector: ``regex`` finds candidates, ``validate`` (if any) confirms one."""

    name: str
    regex: re.Pattern[str]
    description: str = ""
    validate: Callable[[str], bool] | None = None

    def search(self, text: str) -> bool:
        """True when ``text`` contains a (validated) match."""
        for found in self.regex.finditer(text):
            if self.validate is None or self.validate(found.group(0)):
                return True
        return False


def luhn_valid(candidate: str) -> bool:
    """The Luhn checksum of the digits of ``candidate`` (13 to 19 of them) is valid."""
    digits = [int(c) for c in candidate if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for index, digit in enumerate(reversed(digits)):
        if index % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def iban_valid(candidate: str) -> bool:
    """ISO 13616 check: move the first four characters to the end, letters to numbers,
    remainder mod 97 is 1."""
    compact = candidate.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1


BUILTIN_PATTERNS: dict[str, InputPattern] = {
    p.name: p
    for p in (
        InputPattern(
            "card-number",
            re.compile(r"(?<![\d])(?:\d[ -]?){12,18}\d(?![\d])"),
            "payment card number (Luhn-checked)",
            luhn_valid,
        ),
        InputPattern(
            "us-ssn",
            re.compile(
                r"(?<![\d-])(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\d-])"
            ),
            "US social security number",
        ),
        InputPattern(
            "iban",
            re.compile(r"\b[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){11,30}\b"),
            "IBAN (mod-97-checked)",
            iban_valid,
        ),
        InputPattern(
            "email",
            re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"),
            "email address",
        ),
    )
}


def custom_pattern(name: str, regex: str) -> InputPattern:
    """A pattern from a policy document (``re.error`` if ``regex`` does not compile)."""
    return InputPattern(name, re.compile(regex), f"custom pattern {regex!r}")


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if _IDENTIFIER.match(key) else f"{path}[{key!r}]"


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string (and number, as text) in ``value`` with its path, depth first."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int | float):
        yield path, str(value)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, _child(path, str(key)))
    elif isinstance(value, Sequence):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")


def scan(
    value: Any, patterns: Sequence[InputPattern], root: str = "input"
) -> tuple[str, str] | None:
    """The first ``(pattern name, path)`` where one of ``patterns`` matches ``value``, or None."""
    if not patterns:
        return None
    for path, text in _strings(value, root):
        for pattern in patterns:
            if pattern.search(text):
                return pattern.name, path
    return None
