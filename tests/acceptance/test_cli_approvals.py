"""``podium run`` stopping at a human checkpoint and ``podium approvals`` deciding it, as real
processes, on the local database and over HTTP (issue 10 §8)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.acceptance.clitools import (
    EXAMPLES,
    assert_no_traceback,
    podium,
    serving,
    start_podium,
    stop,
)

CHECKPOINT = EXAMPLES / "checkpoint.yaml"


def pending(db_url: str | None, url: str | None = None, deadline: float = 60) -> dict[str, object]:
    """The one pending approval, once there is one (polls ``podium approvals list``)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        listed = podium("approvals", "list", "--json", db_url=db_url, url=url)
        assert listed.returncode == 0, listed.stderr
        items = json.loads(listed.stdout)["items"]
        if items:
            (item,) = items
            return dict(item)
        time.sleep(0.2)
    raise AssertionError("no pending approval appeared")


def test_run_waits_at_the_checkpoint_prints_the_command_and_ends_after_approve(
    db_url: str,
) -> None:
    assert podium("migrate", db_url=db_url).returncode == 0
    run = start_podium("run", str(CHECKPOINT), "-p", "topic=tea", db_url=db_url)
    try:
        approval = pending(db_url)
        assert approval["question"] == "Publish the note on tea?"
        shown = podium("approvals", "show", str(approval["approvalId"]), db_url=db_url)
        assert f"decide: podium approvals approve {approval['approvalId']}" in shown.stdout
        decided = podium(
            "approvals", "approve", str(approval["approvalId"]), "--note", "fine", db_url=db_url
        )
        assert decided.returncode == 0, decided.stderr
        assert decided.stdout.startswith(f"continue: approval {approval['approvalId']} is approved")
        out, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            stop(run)
    assert run.returncode == 0, err
    command = f"podium approvals approve {approval['approvalId']}"
    assert f"waiting for approval: Publish the note on tea?  decide: {command}" in out
    assert any(line.split()[1:4] == ["draft", "decided", "continue"] for line in out.splitlines())
    again = podium("approvals", "abort", str(approval["approvalId"]), db_url=db_url)
    assert again.returncode != 0
    assert_no_traceback(again)
    assert "already approved: continue by cli" in again.stderr


@pytest.fixture
def server_url(db_url: str, tmp_path: Path) -> Iterator[str]:
    with serving(db_url, tmp_path) as server:
        yield server.url


def test_retry_with_changes_then_abort_over_http(server_url: str) -> None:
    assert podium("definitions", "push", str(CHECKPOINT), url=server_url).returncode == 0
    launched = podium("run", str(CHECKPOINT), "--no-follow", "--json", url=server_url)
    assert launched.returncode == 0, launched.stderr
    first = pending(None, server_url)
    by_kind = podium("approvals", "list", "--kind", "checkpoint", "--json", url=server_url)
    assert [a["approvalId"] for a in json.loads(by_kind.stdout)["items"]] == [first["approvalId"]]
    retried = podium(
        "approvals",
        "retry",
        str(first["approvalId"]),
        "--set",
        "text=shorter",
        "--json",
        url=server_url,
    )
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout)["approval"]["modifications"] == {"input": {"text": "shorter"}}
    second = pending(None, server_url)
    assert second["approvalId"] != first["approvalId"]
    assert second["stepOutput"]["output"] == {"text": "shorter"}  # type: ignore[index]
    aborted = podium(
        "approvals", "abort", str(second["approvalId"]), "--note", "no", url=server_url
    )
    assert aborted.returncode == 0, aborted.stderr
    assert "the run is aborted" in aborted.stdout
