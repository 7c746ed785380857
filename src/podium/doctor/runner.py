"""Run the checks and apply the safe fixes.

``diagnose`` is read-only. ``apply_fixes`` applies, for each finding whose check has a
registered fixer, that fixer once; fixers are compare-and-sets through the storage layer
(each change writes its event), so running them twice changes nothing the second time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from podium.doctor import (
    agents,
    caching,
    checkpoints,
    children,
    performance,
    recovery,
    streams,
    stuck,
    system,
    webhooks,
)
from podium.doctor.facts import Facts
from podium.doctor.model import CHECKS, FIXERS, SEVERITY_RANK, Finding, Options
from podium.errors import InvalidInput, Issue
from podium.storage.store import SqlStore

log = logging.getLogger(__name__)

# the modules whose checks register themselves on import (one per runbook section)
SECTION_MODULES = (
    stuck,
    checkpoints,
    children,
    agents,
    performance,
    caching,
    streams,
    webhooks,
    recovery,
    system,
)

EXIT_HEALTHY, EXIT_WARNINGS, EXIT_ERRORS = 0, 1, 2
# the checks that need no Podium table (the others wait until the schema is current)
SCHEMA_FREE = ("podium.migrations", "podium.sqlite-settings")


@dataclass(frozen=True)
class Report:
    findings: list[Finding]
    checks: list[str]
    failed_checks: dict[str, str] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        worst = max((SEVERITY_RANK[f.severity] for f in self.findings), default=0)
        if worst == SEVERITY_RANK["error"] or self.failed_checks:
            return EXIT_ERRORS
        return EXIT_WARNINGS if worst == SEVERITY_RANK["warning"] else EXIT_HEALTHY

    def to_dict(self) -> dict[str, Any]:
        return {
            "healthy": not self.findings and not self.failed_checks,
            "exitCode": self.exit_code,
            "checks": self.checks,
            "failedChecks": self.failed_checks,
            "findings": [f.to_dict() for f in self.findings],
        }


def select_checks(only: Sequence[str] | None) -> list[str]:
    """The check ids to run: all, or those named (a prefix such as ``stuck`` names a group)."""
    if not only:
        return list(CHECKS)
    chosen: list[str] = []
    unknown: list[str] = []
    for name in only:
        matched = [c for c in CHECKS if c == name or c.startswith(name + ".")]
        if not matched:
            unknown.append(name)
        chosen.extend(m for m in matched if m not in chosen)
    if unknown:
        raise InvalidInput(
            "unknown check",
            [Issue("only", f"{u}: known checks are {', '.join(CHECKS)}") for u in unknown],
        )
    return chosen


def diagnose(store: SqlStore, options: Options, only: Sequence[str] | None = None) -> Report:
    """Run the chosen checks on ``store``; a check that raises is reported, not fatal."""
    ids = select_checks(only)
    facts = Facts(store, options)
    current, head = facts.revisions
    if current != head:  # the other checks' queries need the current schema
        ids = [c for c in ids if c in SCHEMA_FREE] or ["podium.migrations"]
    findings: list[Finding] = []
    failed: dict[str, str] = {}
    for check_id in ids:
        try:
            findings.extend(CHECKS[check_id].fn(facts, options))
        except Exception as exc:  # one broken check must not hide the others' findings
            log.debug("doctor check %s failed", check_id, exc_info=True)
            failed[check_id] = f"{type(exc).__name__}: {exc}"
    if options.organization is not None:
        findings = [f for f in findings if f.organization == options.organization]
    findings.sort(key=lambda f: (f.section, -SEVERITY_RANK[f.severity], f.check))
    return Report(findings=findings, checks=ids, failed_checks=failed)


@dataclass(frozen=True)
class Applied:
    finding: Finding
    changed: int


def apply_fixes(store: SqlStore, report: Report, options: Options) -> list[Applied]:
    """Apply the registered safe fix of each finding; returns what each changed."""
    applied: list[Applied] = []
    for finding in report.findings:
        fix = FIXERS.get(finding.check)
        if fix is None or finding.fix is None or not finding.fix.automatic:
            continue
        applied.append(Applied(finding, fix(store, finding, options)))
    return applied
