"""``podium cache`` on the local database and over ``--url`` (a real server on loopback), on
SQLite and PostgreSQL: stats, list and clear with filters in both places, one organization's
entries only; bad input and missing rights are one ``error:`` line with a non-zero exit."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from podium.storage.cache import CacheFilter
from podium.storage.store import SqlStore
from podium.storage.tables import cache_entries
from tests.cli.conftest import Where


def entries(store: SqlStore, organization: str, *expires: datetime | None) -> list[str]:
    """Cache entries of step ``heavy`` of ``cached-cli``, stored two hours ago, one per
    expiry given; their fingerprints."""
    stored = datetime.now(UTC) - timedelta(hours=2)
    rows: list[dict[str, Any]] = [
        {
            "organization_slug": organization,
            "fingerprint": uuid.uuid4().hex * 2,
            "definition_name": "cached-cli",
            "step_id": "heavy",
            "agent": "echo",
            "output": {"text": "same"},
            "stored_at": stored,
            "expires_at": expiry,
            "hits": 2,
            "source_run_id": str(uuid.uuid4()),
            "source_step_record_id": str(uuid.uuid4()),
        }
        for expiry in expires
    ]
    store.db.write(lambda conn: conn.execute(cache_entries.insert(), rows))
    return [r["fingerprint"] for r in rows]


def test_stats_list_and_clear(where: Where) -> None:
    now = datetime.now(UTC)
    old, older, live = entries(
        where.store, "acme", now - timedelta(minutes=1), now - timedelta(hours=1), None
    )
    [theirs] = entries(where.store, "globex", now - timedelta(hours=1))

    stats = where.json("cache", "stats")
    assert (stats["entries"], stats["hits"], stats["expired"]) == (3, 6, 2)
    code, out, _ = where.run("cache", "stats")
    assert code == 0
    assert out.startswith("3 entries, 6 hits served, 2 expired\n")
    assert "cached-cli" in out

    assert {e["fingerprint"] for e in where.json("cache", "list")} == {old, older, live}
    expired = where.json("cache", "list", "--expired")
    assert {e["fingerprint"] for e in expired} == {old, older}
    assert [e["fingerprint"] for e in where.json("cache", "list", "--fingerprint", live)] == [live]
    assert where.json("cache", "list", "--definition", "cached-cli", "--step", "other") == []
    assert len(where.json("cache", "list", "--limit", "1")) == 1
    code, table, _ = where.run("cache", "list", "--definition", "cached-cli")
    assert code == 0
    assert live[:12] in table
    assert "never" in table  # the entry without an expiry

    assert where.json("cache", "clear", "--expired") == {"deleted": 2}
    assert [e["fingerprint"] for e in where.json("cache", "list")] == [live]
    code, out, _ = where.run("cache", "clear", "--all")
    assert (code, out) == (0, "deleted 1 cache entry\n")
    assert where.run("cache", "list")[1] == "no cache entries\n"
    # another organization's entry was neither listed nor deleted
    assert [e.fingerprint for e in where.store.cache.list_entries("globex", CacheFilter())] == [
        theirs
    ]


def test_bad_input_is_one_line_and_a_non_zero_exit(where: Where) -> None:
    entries(where.store, "acme", None)
    code, line = where.error("cache", "clear")
    assert code == 2
    assert "say which entries to delete" in line
    assert where.error("cache", "list", "--older-than", "-1")[0] == 2
    assert len(where.json("cache", "list")) == 1  # nothing was deleted


def test_the_organization_is_the_local_operators_or_the_api_keys(where: Where) -> None:
    """Locally --org picks the organization; on a server the key's organization is used,
    --org is a usage error, and a viewer may look but not delete."""
    [theirs] = entries(where.store, "globex", None)
    if not where.remote:
        assert [e["fingerprint"] for e in where.json("cache", "list", "--org", "globex")] == [
            theirs
        ]
        assert where.json("cache", "clear", "--all", "--org", "globex") == {"deleted": 1}
        return
    code, line = where.error("cache", "list", "--org", "globex")
    assert code == 2
    assert "--org names an organization of the local database" in line
    _, viewer = where.store.create_key(organization="globex", role="viewer", name="v@globex")
    where.api_key = viewer
    assert [e["fingerprint"] for e in where.json("cache", "list")] == [theirs]
    code, line = where.error("cache", "clear", "--all")
    assert code == 1
    assert "needs the operator role" in line
    assert len(where.store.cache.list_entries("globex", CacheFilter())) == 1
