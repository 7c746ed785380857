"""Fixtures for the doctor's scenario tests: a store on both databases and helpers that
run the checks as ``podium doctor`` does."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from podium.doctor.model import Finding, Options
from podium.doctor.runner import Report, diagnose
from podium.settings import Settings
from podium.storage.store import SqlStore
from tests.support import fast_settings


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    s = SqlStore.open(db_url)
    yield s
    s.close()


@pytest.fixture
def settings(db_url: str) -> Settings:
    return fast_settings(db_url)


def options(
    settings: Settings,
    *,
    later: float = 0.0,
    run_id: str | None = None,
    organization: str | None = None,
    environ: Mapping[str, str] | None = None,
    stalled_after: float = 300.0,
) -> Options:
    """Options as of ``later`` seconds from now (a doctor looking later, when the runs
    written now have been quiet for that long)."""
    return Options(
        settings=settings,
        now=datetime.now(UTC) + timedelta(seconds=later),
        organization=organization,
        run_id=run_id,
        stalled_after=stalled_after,
        probe_timeout=1.0,
        environ=dict(environ or {}),
    )


def run_checks(store: SqlStore, settings: Settings, only: Sequence[str], **kwargs: Any) -> Report:
    report = diagnose(store, options(settings, **kwargs), only)
    assert not report.failed_checks, report.failed_checks
    return report


def findings(store: SqlStore, settings: Settings, check: str, **kwargs: Any) -> list[Finding]:
    return [f for f in run_checks(store, settings, [check], **kwargs).findings if f.check == check]


def execute(store: SqlStore, statement: sa.Executable) -> None:
    """Inject a state into the database (a symptom the engine would not leave by itself)."""
    store.db.write(lambda conn: conn.execute(statement))
