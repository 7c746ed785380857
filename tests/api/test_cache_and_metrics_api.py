"""``/api/admin/cache`` and ``GET /metrics`` over HTTP (issue 12), on both databases."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from prometheus_client.parser import text_string_to_metric_families

from podium.storage.store import SqlStore
from podium.storage.tables import cache_entries
from tests.api.conftest import KeyMaker
from tests.api.helpers import Finisher, assert_problem, bearer, launch, push

CACHED = """
metadata: {name: cached-api, version: 1.0.0}
orchestration:
  execution: {caching: {enabled: true, ttlSeconds: 600}}
  steps:
    - {id: heavy, agent: echo, input: {text: same}}
"""


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


async def test_cached_rerun_then_list_filter_and_delete(
    client: httpx.AsyncClient, acme: dict[str, str], globex: dict[str, str], finish: Finisher
) -> None:
    await push(client, acme, CACHED)
    first = await launch(client, acme, "cached-api")
    assert await finish(first["id"]) == "completed"
    second = await launch(client, acme, "cached-api")
    assert await finish(second["id"]) == "completed"
    listed = (await client.get("/api/admin/cache", headers=acme)).json()["items"]
    assert len(listed) == 1
    assert listed[0]["hits"] == 1
    assert listed[0]["sourceRunId"] == first["id"]
    fp = listed[0]["fingerprint"]
    # another organization sees none of it and cannot delete it
    assert (await client.get("/api/admin/cache", headers=globex)).json()["items"] == []
    gone = await client.delete("/api/admin/cache", params={"fingerprint": fp}, headers=globex)
    assert gone.json() == {"deleted": 0}
    by_step = await client.get(
        "/api/admin/cache", params={"definition": "cached-api", "step": "nope"}, headers=acme
    )
    assert by_step.json()["items"] == []
    stats = (await client.get("/api/admin/cache/stats", headers=acme)).json()
    assert (stats["entries"], stats["hits"]) == (1, 1)
    # a refresh launch recomputes: the entry is replaced with no hits and a new source
    third = await launch(client, acme, "cached-api", refresh=True)
    assert await finish(third["id"]) == "completed"
    [entry] = (await client.get("/api/admin/cache", headers=acme)).json()["items"]
    assert (entry["hits"], entry["sourceRunId"]) == (0, third["id"])
    deleted = await client.delete(
        "/api/admin/cache", params={"definition": "cached-api"}, headers=acme
    )
    assert deleted.json() == {"deleted": 1}


async def test_delete_without_a_filter_needs_all(
    client: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    assert_problem(await client.delete("/api/admin/cache", headers=acme), 422)
    everything = await client.delete("/api/admin/cache", params={"all": "true"}, headers=acme)
    assert everything.json() == {"deleted": 0}
    assert_problem(
        await client.get("/api/admin/cache", params={"fingerprint": "zz"}, headers=acme), 422
    )


async def test_expired_entries_listed_and_deleted(
    client: httpx.AsyncClient, acme: dict[str, str], store: SqlStore
) -> None:
    """``expired=true`` names the entries past ``expiresAt`` (the sweeper's backlog, which
    ``podium doctor`` reports); the live ones stay."""
    now = datetime.now(UTC)
    rows = [
        {
            "organization_slug": "acme",
            "fingerprint": uuid.uuid4().hex * 2,
            "definition_name": "cached-api",
            "step_id": "heavy",
            "agent": "echo",
            "output": None,
            "stored_at": now - timedelta(hours=2),
            "expires_at": expires,
            "hits": 0,
            "source_run_id": str(uuid.uuid4()),
            "source_step_record_id": str(uuid.uuid4()),
        }
        for expires in (now - timedelta(hours=1), now - timedelta(minutes=1), now + timedelta(1))
    ]
    store.db.write(lambda conn: conn.execute(cache_entries.insert(), rows))
    expired = {"expired": "true"}
    listed = (await client.get("/api/admin/cache", params=expired, headers=acme)).json()
    assert {e["fingerprint"] for e in listed["items"]} == {r["fingerprint"] for r in rows[:2]}
    deleted = await client.delete("/api/admin/cache", params=expired, headers=acme)
    assert deleted.json() == {"deleted": 2}
    [left] = (await client.get("/api/admin/cache", headers=acme)).json()["items"]
    assert left["fingerprint"] == rows[2]["fingerprint"]


async def test_viewer_may_list_but_not_delete(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    viewer = bearer(make_key("acme", "viewer"))
    assert (await client.get("/api/admin/cache", headers=viewer)).status_code == 200
    denied = await client.delete("/api/admin/cache", params={"all": "true"}, headers=viewer)
    assert_problem(denied, 403)


async def test_metrics_is_public_and_has_every_spec_series(
    client: httpx.AsyncClient, acme: dict[str, str], finish: Finisher, store: SqlStore
) -> None:
    await push(client, acme, CACHED)
    run = await launch(client, acme, "cached-api")
    assert await finish(run["id"]) == "completed"
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    names = {f.name for f in text_string_to_metric_families(response.text)}
    for name in (
        "orchestration_runs",
        "orchestration_run_duration_seconds",
        "orchestration_step_duration_seconds",
        "orchestration_step_queue_seconds",
        "orchestration_steps_in_flight",
        "orchestration_runs_active",
        "orchestration_cache_requests",
        "orchestration_agent_calls",
        "orchestration_approvals_pending",
        "orchestration_webhook_deliveries",
        "orchestration_webhook_dead_letters",
        "orchestration_recoveries",
        "podium_build_info",
        "process_cpu_seconds",
        "python_info",
    ):
        assert name in names, name
    found = samples(response.text)
    done = (("definition", "cached-api"), ("status", "completed"))
    assert found[("orchestration_runs_total", done)] >= 1
    assert found[("orchestration_runs_active", (("status", "running"),))] == 0
