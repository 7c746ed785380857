"""The doctor's report as the API serves it (and the CLI reads it back over ``--url``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from podium.doctor.runner import Report


class FixView(BaseModel):
    command: str = Field(description="The exact command that resolves the finding.")
    api: str | None = Field(default=None, description="The API call that does, if any.")
    automatic: bool = Field(default=False, description="`podium doctor --fix` applies it.")


class FindingView(BaseModel):
    check: str
    section: str = Field(description="The runbook section, number and title.")
    severity: Literal["error", "warning", "info"]
    summary: str
    evidence: dict[str, Any]
    fix: FixView | None = None
    organization: str | None = None
    runId: str | None = None


class DiagnosticsView(BaseModel):
    """``GET /api/admin/diagnostics``: every finding of the checks run."""

    healthy: bool
    exitCode: int = Field(description="0 healthy, 1 warnings, 2 errors (as `podium doctor`).")
    checks: list[str]
    failedChecks: dict[str, str] = Field(default_factory=dict)
    findings: list[FindingView]

    @classmethod
    def of(cls, report: Report) -> DiagnosticsView:
        return cls.model_validate(report.to_dict())
