"""``podium run --refresh-cache`` and ``podium cache stats|list|clear`` as real processes
(issue 12), on both databases."""

from __future__ import annotations

import json

import pytest

from tests.acceptance.clitools import EXAMPLES, podium

CACHED = str(EXAMPLES / "cached.yaml")


def analyse_cache(db_url: str, *extra: str) -> dict[str, object]:
    done = podium("run", CACHED, "--json", *extra, db_url=db_url)
    assert done.returncode == 0, done.stderr
    detail = json.loads(done.stdout)
    step = next(s for s in detail["steps"] if s["stepId"] == "analyse")
    cache: dict[str, object] = step["metadata"]["runtime"]["cache"]
    return cache


@pytest.mark.timeout(900)  # seven podium processes: minutes on a loaded machine
def test_rerun_hits_refresh_recomputes_and_cache_commands_manage_entries(db_url: str) -> None:
    first = analyse_cache(db_url)
    assert first["hit"] is False
    second = analyse_cache(db_url)
    assert second["hit"] is True
    assert second["hits"] == 1
    assert second["fingerprint"] == first["fingerprint"]
    refreshed = analyse_cache(db_url, "--refresh-cache")
    assert refreshed["hit"] is False
    assert str(refreshed["storedAt"]) > str(first["storedAt"])
    stats = json.loads(podium("cache", "stats", "--json", db_url=db_url).stdout)
    assert (stats["entries"], stats["hits"]) == (1, 0)
    listed = json.loads(podium("cache", "list", "--json", db_url=db_url).stdout)
    assert [e["fingerprint"] for e in listed] == [first["fingerprint"]]
    refused = podium("cache", "clear", db_url=db_url)
    assert refused.returncode != 0
    assert refused.stderr.startswith("error: say which entries to delete")
    assert "Traceback" not in refused.stderr
    cleared = podium("cache", "clear", "--definition", "cached-summary", "--json", db_url=db_url)
    assert json.loads(cleared.stdout) == {"deleted": 1}
    human = podium("cache", "list", db_url=db_url)
    assert "no cache entries" in human.stdout
