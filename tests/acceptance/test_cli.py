"""The ``podium`` command line, run as a real process against SQLite and PostgreSQL."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.clitools import (
    EXAMPLES,
    TIMEOUT,
    assert_no_traceback,
    podium,
    start_podium,
    write,
)

FANOUT = EXAMPLES / "fanout.yaml"

ALWAYS_FAILS = """
metadata: { name: always-fails, version: 1.0.0 }
orchestration:
  error_handling:
    on_step_failure: { maxAttempts: 2, initialDelayMs: 50 }
  steps:
    - id: start
      agent: echo
      input: { text: hello }
    - id: doomed
      agent: fail
      depends_on: [start]
      input: { message: the model refused }
"""

TINY = """
metadata: { name: tiny, version: 2.1.0 }
orchestration:
  parameters:
    - { name: count, type: integer, default: 1 }
  steps:
    - id: only
      agent: echo
      input: { n: "{{ parameters.count }}" }
"""

# a cycle, maxParallelSteps 0 and an unknown dependency: every one must be reported
BROKEN = """
metadata: { name: broken, version: 1.0.0 }
orchestration:
  execution:
    concurrency: { maxParallelSteps: 0 }
  steps:
    - id: a
      agent: echo
      depends_on: [b]
    - id: b
      agent: echo
      depends_on: [a]
    - id: c
      agent: echo
      depends_on: [nowhere]
"""


def outputs_of(stdout: str) -> Any:
    """The JSON printed after the ``outputs:`` line."""
    return json.loads(stdout.split("\noutputs:\n", 1)[1])


# -- podium run -----------------------------------------------------------------------------


def test_run_of_the_fanout_example_completes_after_retrying_the_flaky_step(db_url: str) -> None:
    result = podium("run", str(FANOUT), "-p", "text=three short words", db_url=db_url)

    assert result.returncode == 0, result.stderr
    assert_no_traceback(result)
    lines = result.stdout.splitlines()
    retry = [line for line in lines if line.split()[1:3] == ["review", "retry"]]
    assert len(retry) == 1
    assert "attempt 1 failed: agent_execution_error" in retry[0]
    assert "attempt 2 at" in retry[0]
    assert any(line.split()[1:5] == ["review", "completed", "attempt", "2:"] for line in lines)
    assert any(line.startswith("completed run ") and "1 retry" in line for line in lines)
    report = outputs_of(result.stdout)["report"]["output"]
    assert report == {"words": 3, "loud": "THREE SHORT WORDS", "reviewedOnAttempt": 2}


def test_run_whose_step_always_fails_exits_1_and_prints_the_error(
    db_url: str, tmp_path: Path
) -> None:
    path = write(tmp_path, "fails.yaml", ALWAYS_FAILS)

    result = podium("run", str(path), db_url=db_url)

    assert result.returncode == 1
    assert_no_traceback(result)
    assert any(line.split()[1:3] == ["doomed", "retry"] for line in result.stdout.splitlines())
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1
    assert errors[0].startswith("error: run ")
    assert "failed: step doomed: agent_execution_error: the model refused" in errors[0]


def test_run_with_an_unknown_parameter_is_refused_in_one_line(db_url: str) -> None:
    assert podium("migrate", db_url=db_url).returncode == 0
    result = podium("run", str(FANOUT), "-p", "colour=red", db_url=db_url)

    assert result.returncode == 2
    assert_no_traceback(result)
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: parameters are invalid")
    naming = [line for line in lines if "colour" in line]
    assert len(naming) == 1
    assert "parameters.colour: unknown parameter 'colour'" in naming[0]
    assert result.stdout == ""
    listed = podium("runs", "list", "--json", db_url=db_url)
    assert json.loads(listed.stdout) == {"items": [], "nextCursor": None}  # nothing launched


def test_run_with_a_parameter_without_equals_sign_names_it(db_url: str) -> None:
    result = podium("run", str(FANOUT), "-p", "shout", db_url=db_url)

    assert result.returncode == 2
    assert_no_traceback(result)
    assert result.stderr.strip().splitlines() == [
        "error: Invalid value for '-p': expected key=value, got 'shout' (see 'podium run --help')"
    ]


def test_run_of_a_missing_file_gives_one_line(db_url: str) -> None:
    result = podium("run", "does-not-exist.yaml", db_url=db_url)

    assert result.returncode != 0
    assert_no_traceback(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert "does-not-exist.yaml" in lines[0]


def test_run_json_reports_the_final_run(db_url: str, tmp_path: Path) -> None:
    path = write(tmp_path, "tiny.yaml", TINY)

    result = podium("run", str(path), "-p", "count=3", "--json", db_url=db_url)

    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["run"]["status"] == "completed"
    assert doc["run"]["parameters"] == {"count": 3}
    assert doc["run"]["outputs"]["only"]["output"] == {"n": 3}
    assert [s["stepId"] for s in doc["steps"]] == ["only"]


def test_interrupted_run_stops_the_worker_and_says_how_to_see_the_run(db_url: str) -> None:
    proc = start_podium("run", str(FANOUT), db_url=db_url)
    try:
        assert proc.stdout is not None
        seen: list[str] = []
        for line in proc.stdout:  # wait until the 1.5 s `think` step is running
            seen.append(line)
            if " think " in line and " running " in line:
                break
        else:
            pytest.fail(f"never saw `think` running: {seen}")
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

    assert proc.returncode == 130
    assert "Traceback" not in err
    run_id = seen[0].split()[2]
    assert "interrupted: stopped following run " + run_id in err
    assert f"podium runs show {run_id}" in err


# -- podium definitions validate ------------------------------------------------------------


def test_validate_reports_a_valid_definition() -> None:
    result = podium("definitions", "validate", str(FANOUT))

    assert result.returncode == 0
    assert result.stdout.strip() == "valid: text-fanout@1.0.0 (6 steps)"


def test_validate_prints_every_issue_with_its_path(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.yaml", BROKEN)

    result = podium("definitions", "validate", str(path))

    assert result.returncode == 2
    assert_no_traceback(result)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines[0] == f"error: {path} is invalid: 3 problem(s)"
    issues = [line.strip() for line in lines[1:]]
    assert len(issues) == 3
    assert issues[0].startswith(
        "orchestration.execution.concurrency.maxParallelSteps: maxParallelSteps must be at least 1"
    )
    assert issues[1].startswith("orchestration.steps[0].depends_on: cycle: a -> b -> a")
    assert issues[2].startswith("orchestration.steps[2].depends_on[0]: unknown step 'nowhere'")


def test_run_of_an_invalid_definition_is_a_usage_error_with_every_issue(
    db_url: str, tmp_path: Path
) -> None:
    """The same wording and exit code as ``podium definitions validate``."""
    path = write(tmp_path, "broken.yaml", BROKEN)

    result = podium("run", str(path), db_url=db_url)

    assert result.returncode == 2
    assert result.stderr == podium("definitions", "validate", str(path)).stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0] == f"error: {path} is invalid: 3 problem(s)"
    assert len(lines) == 4
    assert all(line.startswith("  orchestration.") for line in lines[1:])


# -- podium runs list / show, abort ---------------------------------------------------------


def test_runs_list_and_show_describe_a_finished_run(db_url: str, tmp_path: Path) -> None:
    failing = write(tmp_path, "fails.yaml", ALWAYS_FAILS)
    tiny = write(tmp_path, "tiny.yaml", TINY)
    assert podium("run", str(failing), "--json", db_url=db_url).returncode == 1
    done = json.loads(podium("run", str(tiny), "--json", db_url=db_url).stdout)
    run_id = done["run"]["id"]

    listed = podium("runs", "list", db_url=db_url)
    assert listed.returncode == 0
    header, first, second = listed.stdout.strip().splitlines()
    assert header.split() == ["id", "definition", "status", "created", "duration"]
    assert first.split()[:3] == [run_id, "tiny@2.1.0", "completed"]  # newest first
    assert second.split()[1:3] == ["always-fails@1.0.0", "failed"]

    failed_only = podium("runs", "list", "--status", "failed", "--json", db_url=db_url)
    only_failed = json.loads(failed_only.stdout)["items"]
    assert [r["definition"] for r in only_failed] == ["always-fails"]

    failed_id = only_failed[0]["id"]
    shown = podium("runs", "show", failed_id, db_url=db_url)
    assert shown.returncode == 0
    assert failed_id in shown.stdout
    assert "attempts:" in shown.stdout
    attempts = [line.split() for line in shown.stdout.splitlines() if line.startswith("doomed ")]
    # one row in the steps table, then one per attempt
    assert [row[:3] for row in attempts[1:]] == [
        ["doomed", "1", "failed"],
        ["doomed", "2", "failed"],
    ]
    assert "error: step doomed: agent_execution_error: the model refused" in shown.stdout

    detail = json.loads(podium("runs", "show", run_id, "--events", "--json", db_url=db_url).stdout)
    assert detail["run"]["outputs"]["only"]["output"] == {"n": 1}
    assert [a["outcome"] for a in detail["steps"][0]["attempts"]] == ["completed"]
    sequences = [e["sequence"] for e in detail["events"]]
    assert sequences == list(range(1, len(sequences) + 1))
    assert detail["events"][-1]["type"] == "orchestration.run.completed"


def test_looking_at_a_database_without_schema_says_to_migrate(db_url: str) -> None:
    if db_url.startswith("sqlite:///"):
        Path(db_url.removeprefix("sqlite:///")).touch()  # a file, but no schema in it
    result = podium("runs", "list", db_url=db_url)

    assert result.returncode == 2
    assert_no_traceback(result)
    [line] = result.stderr.strip().splitlines()
    assert "has no Podium schema; this Podium needs " in line
    assert line.endswith(": run `podium migrate`")


def test_looking_where_there_is_no_sqlite_file_creates_none(sqlite_url: str) -> None:
    result = podium("runs", "list", db_url=sqlite_url)

    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: there is no database at ")
    assert "`podium migrate` creates it" in line
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()


def test_runs_show_of_an_unknown_run_is_one_line(db_url: str) -> None:
    assert podium("migrate", db_url=db_url).returncode == 0
    result = podium("runs", "show", "no-such-run", db_url=db_url)

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["error: run no-such-run not found"]


def test_runs_show_accepts_a_unique_prefix_of_the_run_id(db_url: str, tmp_path: Path) -> None:
    tiny = write(tmp_path, "tiny.yaml", TINY)
    launched = json.loads(podium("run", str(tiny), "--no-follow", "--json", db_url=db_url).stdout)
    run_id = launched["id"]

    shown = podium("runs", "show", run_id[:13], "--json", db_url=db_url)

    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["run"]["id"] == run_id


def test_abort_of_a_launched_run(db_url: str, tmp_path: Path) -> None:
    tiny = write(tmp_path, "tiny.yaml", TINY)
    launched = json.loads(podium("run", str(tiny), "--no-follow", "--json", db_url=db_url).stdout)
    run_id = launched["id"]

    aborted = podium("abort", run_id, "--reason", "changed my mind", db_url=db_url)
    assert aborted.returncode == 0, aborted.stderr
    assert aborted.stdout.startswith(f"aborted run {run_id}")
    detail = json.loads(podium("runs", "show", run_id, "--json", db_url=db_url).stdout)
    assert detail["run"]["status"] == "aborted"
    assert {s["status"] for s in detail["steps"]} == {"aborted"}

    again = podium("abort", run_id, db_url=db_url)
    assert again.returncode == 1
    assert len(again.stderr.strip().splitlines()) == 1


def test_a_local_retry_is_recorded_and_holds_off_other_actions_until_forced(
    db_url: str, tmp_path: Path
) -> None:
    failing = write(tmp_path, "fails.yaml", ALWAYS_FAILS)
    failed = json.loads(podium("run", str(failing), "--json", db_url=db_url).stdout)
    run_id = failed["run"]["id"]

    retried = podium(
        "retry", run_id[:13], "--agent", "doomed=echo", "--input", '{"extra": 1}', db_url=db_url
    )
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout == (
        f"retrying step doomed of run {run_id} (generation 2); the run is running\n"
    )
    busy = podium("skip", run_id, "--step", "doomed", db_url=db_url)  # the retry is in flight
    assert busy.returncode == 1
    assert busy.stderr.startswith(f"error: a retry by cli is in flight on run {run_id}")
    bad = podium("retry", run_id, "--input", "{not json", db_url=db_url)
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: Invalid value for '--input': not JSON: ")

    aborted = podium("abort", run_id, "--note", "enough", "--force", "--json", db_url=db_url)
    assert json.loads(aborted.stdout) == {
        "action": "abort",
        "runId": run_id,
        "runStatus": "aborted",
        "stepRecordId": None,
        "stepId": None,
        "generation": None,
    }
    shown = json.loads(podium("runs", "show", run_id, "--events", "--json", db_url=db_url).stdout)
    doomed = next(s for s in shown["steps"] if s["stepId"] == "doomed")
    assert doomed["generation"] == 2
    assert doomed["metadata"]["manualRecovery"][0]["modifications"] == {
        "input": {"extra": 1},
        "agentOverrides": {"doomed": "echo"},
    }
    actions = [e["data"]["action"] for e in shown["events"] if e["type"].endswith("action")]
    assert actions == ["retry"]


# -- podium worker, podium migrate ----------------------------------------------------------


def test_worker_process_runs_a_launched_run_and_stops_on_sigterm(
    db_url: str, tmp_path: Path
) -> None:
    tiny = write(tmp_path, "tiny.yaml", TINY)
    assert podium("migrate", db_url=db_url).returncode == 0
    worker = start_podium("worker", "--concurrency", "2", db_url=db_url)
    try:
        launched = json.loads(
            podium("run", str(tiny), "--no-follow", "--json", db_url=db_url).stdout
        )
        watched = podium("runs", "watch", launched["id"], db_url=db_url)
        assert watched.returncode == 0, watched.stdout + watched.stderr
        assert "run          completed" in watched.stdout
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=TIMEOUT)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()

    assert worker.returncode == 0, err
    assert out.startswith("worker ")
    logged = [line for line in err.splitlines() if launched["id"] in line]
    assert any(" INFO " in line and "completed" in line for line in logged), err
    assert "stopped after completing 1 step(s)" in err


def test_migrate_reports_the_database_without_its_password(db_url: str) -> None:
    first = podium("migrate", "--json", db_url=db_url)
    second = podium("migrate", db_url=db_url)

    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert doc["revision"]
    assert second.returncode == 0
    assert f"revision: {doc['revision']} (already at head)" in second.stdout
    assert "database: " in second.stdout
