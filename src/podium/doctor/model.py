"""Findings, options and the registry of checks.

A check plugs in with one line: ``@check("stuck.no-live-worker", 1)`` on a function
``(facts, options) -> list[Finding]`` in a module that :mod:`podium.doctor.runner` imports.
A check that has a safe fix registers it with ``@fixer("stuck.no-live-worker")``: a function
``(store, finding, options) -> int`` that applies it as a compare-and-set against what the
finding observed and returns how many objects it changed (0 when someone got there first).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from podium.settings import Settings

if TYPE_CHECKING:
    from podium.doctor.facts import Facts
    from podium.storage.store import SqlStore

Severity = Literal["error", "warning", "info"]
SEVERITY_RANK: Mapping[str, int] = {"info": 0, "warning": 1, "error": 2}

SECTIONS: Mapping[int, str] = {
    1: "Run stuck in planning or running",
    2: "Checkpoint approvals missing",
    3: "Sub-orchestration failures",
    4: "Agent invocation errors",
    5: "Performance regressions and cache misses",
    6: "Webhook or streaming gaps",
    7: "Manual recovery actions failing",
    8: "Podium itself",
}


@dataclass(frozen=True)
class Fix:
    """How to resolve a finding: the exact CLI command and, where there is one, the API call."""

    command: str
    api: str | None = None
    automatic: bool = False  # ``podium doctor --fix`` applies it

    def to_dict(self) -> dict[str, Any]:
        return {"command": self.command, "api": self.api, "automatic": self.automatic}


@dataclass(frozen=True)
class Finding:
    """One symptom: which check found it, how bad it is, the evidence and the fix."""

    check: str
    section: int
    severity: Severity
    summary: str
    evidence: dict[str, Any]
    fix: Fix | None = None
    organization: str | None = None  # None: not an organization's object (Podium itself)
    run_id: str | None = None

    @property
    def section_title(self) -> str:
        return f"{self.section}. {SECTIONS[self.section]}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "section": self.section_title,
            "severity": self.severity,
            "summary": self.summary,
            "evidence": self.evidence,
            "fix": self.fix.to_dict() if self.fix else None,
            "organization": self.organization,
            "runId": self.run_id,
        }


@dataclass(frozen=True)
class Options:
    """What to look at. ``organization`` None means every organization (local operator or
    a ``global`` admin); ``environ`` is where webhook settings are read from."""

    settings: Settings
    now: datetime
    organization: str | None = None
    run_id: str | None = None
    stalled_after: float = 300.0
    probe_timeout: float = 2.0
    environ: Mapping[str, str] = field(default_factory=dict)

    @property
    def system(self) -> bool:
        """Whether checks of Podium itself (not of one organization) apply."""
        return self.organization is None


CheckFn = Callable[["Facts", Options], list[Finding]]
FixFn = Callable[["SqlStore", Finding, Options], int]


@dataclass(frozen=True)
class CheckSpec:
    id: str
    section: int
    fn: CheckFn


CHECKS: dict[str, CheckSpec] = {}
FIXERS: dict[str, FixFn] = {}


def check(check_id: str, section: int) -> Callable[[CheckFn], CheckFn]:
    """Register a check (its id is unique; the section is its runbook section)."""

    def register(fn: CheckFn) -> CheckFn:
        if check_id in CHECKS:
            raise ValueError(f"check {check_id} registered twice")
        CHECKS[check_id] = CheckSpec(check_id, section, fn)
        return fn

    return register


def fixer(check_id: str) -> Callable[[FixFn], FixFn]:
    """Register the safe, idempotent fix of a check."""

    def register(fn: FixFn) -> FixFn:
        FIXERS[check_id] = fn
        return fn

    return register


def age(now: datetime, then: datetime | None) -> float | None:
    """Seconds from ``then`` to ``now`` (rounded), or None."""
    return None if then is None else round((now - then).total_seconds(), 1)
