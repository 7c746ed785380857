"""Agent registration is safe under concurrency: ``agents.yaml`` is loaded in one
transaction as an upsert, and a unique violation is a 409 Conflict (through the dialect seam
``storage.dialects.is_unique_violation``), never a raw IntegrityError."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from podium.agents.registry.files import load_startup_files
from podium.errors import Conflict
from podium.storage import dialects
from podium.storage.store import SqlStore

AGENTS_YAML = """
organizations:
  acme:
    - {slug: echo-a, target: "podium.agents.demo:echo"}
    - {slug: echo-b, target: "podium.agents.demo:echo", concurrencyLimit: 3}
  globex:
    - {slug: echo-c, target: "podium.agents.demo:uppercase"}
"""


def at_once(count: int, fn: Callable[[int], Any]) -> list[Any]:
    """Run ``fn(i)`` in ``count`` threads released together; each result or exception."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn(i)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


@pytest.mark.postgres
def test_two_workers_loading_the_same_agents_file_at_once_both_start(
    pg_schema_url: str, tmp_path: Path
) -> None:
    """Two processes' start-up (``load_startup_files``) on PostgreSQL, 10 times, each with
    its own connection pool: both succeed every time (the old code crashed one with an
    IntegrityError)."""
    path = tmp_path / "agents.yaml"
    path.write_text(AGENTS_YAML)
    SqlStore.open(pg_schema_url).close()  # migrate once, as the first start would
    for round_ in range(10):
        stores = [SqlStore.open(pg_schema_url) for _ in range(2)]
        try:
            if round_:
                for org, slug in (("acme", "echo-a"), ("acme", "echo-b"), ("globex", "echo-c")):
                    stores[0].remove_agent(org, slug)
            pair = list(stores)
            results = at_once(
                2, lambda i, pair=pair: load_startup_files(pair[i], {}, agents_file=path)
            )
        finally:
            for s in stores:
                s.close()
        failures = [r for r in results if isinstance(r, Exception)]
        assert not failures, (round_, failures)
        created = sorted(name for r in results for name in r.agents.created)
        unchanged = sorted(name for r in results for name in r.agents.unchanged)
        names = ["acme/echo-a", "acme/echo-b", "globex/echo-c"]
        assert (created, unchanged) == (names, names)  # each created once, found once
    store = SqlStore.open(pg_schema_url)
    try:
        assert store.get_agent("acme", "echo-b").concurrency_limit == 3
        assert len(store.list_agents("acme")) == 2
    finally:
        store.close()


def test_loading_again_updates_and_reports_unchanged(db_url: str, tmp_path: Path) -> None:
    """The upsert on both databases: a second load changes nothing, a changed field is an
    update, another kind replaces the agent."""
    path = tmp_path / "agents.yaml"
    path.write_text(AGENTS_YAML)
    store = SqlStore.open(db_url)
    try:
        first = load_startup_files(store, {}, agents_file=path).agents
        assert first is not None
        assert len(first.created) == 3
        again = load_startup_files(store, {}, agents_file=path).agents
        assert again is not None
        assert len(again.unchanged) == 3
        path.write_text(AGENTS_YAML.replace("concurrencyLimit: 3", "concurrencyLimit: 5"))
        changed = load_startup_files(store, {}, agents_file=path).agents
        assert changed is not None
        assert changed.updated == ["acme/echo-b"]
        assert store.get_agent("acme", "echo-b").concurrency_limit == 5
    finally:
        store.close()


def test_concurrent_registrations_of_one_slug_answer_conflict(db_url: str) -> None:
    """Two registrations of the same slug at once: one wins, the other is a Conflict (409),
    never an IntegrityError; on both databases."""
    stores = [SqlStore.open(db_url) for _ in range(2)]
    try:
        for round_ in range(5):
            slug = f"racer-{round_}"
            results = at_once(
                2,
                lambda i, slug=slug: stores[i].add_agent(  # type: ignore[misc]
                    organization="acme", slug=slug, kind="python", target="podium.agents.demo:echo"
                ),
            )
            errors = [r for r in results if isinstance(r, Exception)]
            assert len(errors) == 1, results
            assert isinstance(errors[0], Conflict), repr(errors[0])
    finally:
        for s in stores:
            s.close()


def test_is_unique_violation_recognises_both_dialects(db_url: str) -> None:
    """The dialect seam: a duplicate key is recognised on SQLite and PostgreSQL alike, and
    another integrity error (NOT NULL) is not."""
    store = SqlStore.open(db_url)
    try:
        engine = store.db.engine
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE uv_probe (k INTEGER PRIMARY KEY, v TEXT NOT NULL)"))
            conn.execute(sa.text("INSERT INTO uv_probe VALUES (1, 'a')"))
        with pytest.raises(sa.exc.IntegrityError) as duplicate, engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO uv_probe VALUES (1, 'b')"))
        assert dialects.is_unique_violation(duplicate.value)
        with pytest.raises(sa.exc.IntegrityError) as missing, engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO uv_probe VALUES (2, NULL)"))
        assert not dialects.is_unique_violation(missing.value)
    finally:
        store.close()
