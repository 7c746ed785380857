"""``podium approvals`` on the local database and over ``--url`` (a real server on loopback),
on SQLite and PostgreSQL: runs wait at a real checkpoint (a worker takes them there), the
inbox lists and shows them in both places, a decision is recorded with the actor, and bad
input is one ``error:`` line with a non-zero exit."""

from __future__ import annotations

import asyncio

from podium.engine.launcher import launch
from podium.storage.store import SqlStore
from tests.api.test_approvals_api import GATED  # the same gated definition
from tests.cli.conftest import Where
from tests.support import definition, fast_settings, running_worker, wait_for


def checkpointed(store: SqlStore, db_url: str, *topics: str) -> list[str]:
    """One run of GATED per topic, each taken by a worker to its checkpoint; their ids."""
    run_ids = [launch(store, definition(GATED), {"topic": t}, organization="acme") for t in topics]

    async def work() -> None:
        async with running_worker(store, fast_settings(db_url)):
            for run_id in run_ids:
                await wait_for(
                    lambda r=run_id: store.get_run(r).status, lambda s: s == "checkpoint"
                )

    asyncio.run(work())
    return run_ids


def test_list_show_and_approve(where: Where, db_url: str) -> None:
    [run_id] = checkpointed(where.store, db_url, "tea")
    [item] = where.json("approvals", "list")["items"]
    assert (item["runId"], item["stepId"], item["status"]) == (run_id, "draft", "pending")
    assert item["question"] == "Publish tea?"
    approval = item["approvalId"]
    code, table, _ = where.run("approvals", "list")
    assert code == 0
    assert approval in table
    assert "Publish tea?" in table

    code, shown, _ = where.run("approvals", "show", approval)
    assert code == 0
    assert f"approval {approval} (checkpoint) is pending" in shown
    assert f"decide: podium approvals approve {approval}" in shown
    assert where.json("approvals", "show", approval)["stepOutput"]["output"] == {"text": "tea"}

    code, out, err = where.run("approvals", "approve", approval, "--note", "reads well")
    assert code == 0, err
    assert out.startswith(f"continue: approval {approval} is approved; step draft is completed")
    actor = "admin@acme" if where.remote else "cli"
    [decided] = where.json("approvals", "list", "--status", "approved")["items"]
    assert (decided["decidedBy"], decided["note"]) == (actor, "reads well")
    assert where.json("approvals", "list") == {"items": [], "nextCursor": None}
    assert where.run("approvals", "list")[1] == "no approvals\n"

    code, line = where.error("approvals", "abort", approval)
    assert code == 1
    assert f"continue by {actor}" in line  # decided already: a conflict naming the decision


def test_retry_with_changes_reject_and_pages(where: Where, db_url: str) -> None:
    first, second = checkpointed(where.store, db_url, "tea", "coffee")
    page = where.json("approvals", "list", "--limit", "1")
    [newest] = page["items"]
    assert newest["runId"] == second
    code, out, _ = where.run("approvals", "list", "--limit", "1")
    assert f"more: --cursor {page['nextCursor']}" in out
    [older] = where.json("approvals", "list", "--cursor", page["nextCursor"])["items"]
    assert older["runId"] == first
    assert [a["runId"] for a in where.json("approvals", "list", "--run", first)["items"]] == [first]

    retried = where.json(
        "approvals",
        "retry",
        older["approvalId"],
        "--set",
        "text=shorter",
        "--set",
        "count=3",
        "--agent",
        "draft=uppercase",
    )
    assert retried["approval"]["decision"] == "retry"
    assert retried["approval"]["modifications"] == {
        "input": {"text": "shorter", "count": 3},  # JSON when it parses, text otherwise
        "agentOverrides": {"draft": "uppercase"},
    }
    code, out, _ = where.run("approvals", "reject", newest["approvalId"], "--note", "no")
    assert code == 0
    assert out.startswith(f"abort: approval {newest['approvalId']} is rejected;")
    assert out.rstrip().endswith("the run is aborted")
    assert where.store.get_run(second).status == "aborted"


def test_bad_input_is_one_line_and_a_non_zero_exit(where: Where, db_url: str) -> None:
    [_run] = checkpointed(where.store, db_url, "tea")
    [item] = where.json("approvals", "list")["items"]
    code, line = where.error("approvals", "respond", item["approvalId"], "--data", "{nope")
    assert code == 2
    assert "'--data'" in line
    assert "not JSON" in line
    assert where.error("approvals", "list", "--kind", "question")[0] == 2
    assert where.error("approvals", "retry", item["approvalId"], "--set", "novalue")[0] == 2
    code, line = where.error("approvals", "show", "01a2339f-c85a-775a-91aa-c743dca6f4a0")
    assert code == 1
    assert "not found" in line
    code, line = where.error("approvals", "respond", item["approvalId"], "--text", "French")
    assert code == 2  # a checkpoint asks no question: only kind input takes an answer
    assert where.json("approvals", "show", item["approvalId"])["status"] == "pending"
