"""Shared fixtures. ``db_url`` runs a test on SQLite (a real file) and on PostgreSQL (a fresh
schema per test). Without a reachable PostgreSQL the PostgreSQL case skips locally and fails
in CI (``CI=true``)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

PG_URL = os.environ.get("PODIUM_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"
SLOW = IN_CI or os.environ.get("PODIUM_SLOW") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if SLOW:
        return
    skip = pytest.mark.skip(reason="slow drill: runs in CI or with PODIUM_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


_pg_reason: str | None = None
_pg_checked = False


def postgres_unavailable() -> str | None:
    """Why PostgreSQL cannot be used, or None when it can."""
    global _pg_checked, _pg_reason
    if not _pg_checked:
        _pg_checked = True
        try:
            engine = sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://"))
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            engine.dispose()
        except Exception as exc:
            _pg_reason = f"PostgreSQL at {PG_URL} is not reachable: {exc}"
    return _pg_reason


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose ``search_path`` is a fresh, empty schema (dropped afterwards)."""
    reason = postgres_unavailable()
    if reason:
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://"))
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'podium.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """The same test on both databases."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_schema_url"))


@pytest.fixture(autouse=True)
def _fresh_consoles() -> Iterator[None]:
    """The CLI's consoles are made once per process and take their width from ``COLUMNS``
    then: a test that sets it must not narrow the tables of the tests after it (xdist runs
    many tests in one process)."""
    from podium.cli import render

    render.out.cache_clear()
    render.err.cache_clear()
    yield
    render.out.cache_clear()
    render.err.cache_clear()
