"""The ``podium`` commands over HTTP (``--url`` / ``PODIUM_URL``) against a real ``podium
serve``, on SQLite and PostgreSQL: the same output as on the local database, the same one-line
errors, the event stream followed (and resumed) by ``runs watch``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from podium.client.remote import RemoteBackend
from podium.errors import NotFound
from podium.service.views import EventView
from tests.acceptance.clitools import (
    EXAMPLES,
    json_of,
    one_error_line,
    podium,
    podium_together,
    serving,
    start_podium,
    stop,
    write,
)

FANOUT = EXAMPLES / "fanout.yaml"
RECOVERY = EXAMPLES / "recovery.yaml"

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

SLOW = """
metadata: { name: slow, version: 1.0.0 }
orchestration:
  steps:
    - id: wait
      agent: sleep
      input: { seconds: %s }
    - id: done
      agent: echo
      depends_on: [wait]
      input: { text: done }
"""

SKIPPABLE = """
metadata: { name: skippable, version: 1.0.0 }
orchestration:
  error_handling: { on_step_failure: { maxAttempts: 1 } }
  steps:
    - id: broken
      agent: fail
      input: { message: the service is down }
    - id: after
      agent: echo
      depends_on: [broken]
      input: { text: carried on }
"""

# short leases, so that a step of a killed server is taken back within seconds
FAST_RECOVERY = {
    "PODIUM_LEASE_SECONDS": "2",
    "PODIUM_HEARTBEAT_SECONDS": "0.5",
    "PODIUM_SWEEP_SECONDS": "0.3",
    "PODIUM_POLL_SECONDS": "0.2",
}


def both(*args: str, db_url: str, url: str) -> tuple[str, str]:
    """Run ``podium ARGS`` over HTTP and on the local database at once; both must succeed."""
    remote, local = podium_together(args, (*args, "--url="), db_url=db_url, url=url)
    assert remote.returncode == 0, remote.stderr
    assert local.returncode == 0, local.stderr
    return remote.stdout, local.stdout


def same_everywhere(*commands: tuple[str, ...], db_url: str, url: str) -> None:
    """Each command prints the same (and exits alike) over HTTP and locally."""
    local = tuple((*args, "--url=") for args in commands)  # an empty URL: the database
    results = podium_together(*commands, *local, db_url=db_url, url=url)
    for args, remote, here in zip(commands, results, results[len(commands) :], strict=False):
        assert remote.returncode == here.returncode, (args, remote.stderr, here.stderr)
        assert (remote.stdout, remote.stderr) == (here.stdout, here.stderr), args
        assert "Traceback" not in remote.stderr + here.stderr


def run_id_of(stdout: str) -> str:
    """The id in ``launched run ID (name@version) on WHERE``."""
    first = stdout.splitlines()[0]
    assert first.startswith("launched run "), first
    return first.split()[2]


def event_lines(stdout: str) -> list[list[str]]:
    """Event lines (``HH:MM:SS.mmm  subject  kind  detail``) without their time."""
    return [line.split()[1:] for line in stdout.splitlines() if line[:2].isdigit()]


@pytest.fixture
def server_url(db_url: str, tmp_path: Path) -> Iterator[str]:
    """A development server (loopback, no keys) on the test's database."""
    with serving(db_url, tmp_path) as server:
        yield server.url


# -- the same output in both modes ----------------------------------------------------------


def test_run_over_http_then_every_view_prints_the_same_as_locally(
    db_url: str, server_url: str
) -> None:
    assert podium("definitions", "push", str(FANOUT), url=server_url).stdout == (
        "pushed text-fanout@1.0.0 (active)\n"
    )
    done = podium("run", str(FANOUT), "-p", "text=three short words", url=server_url)
    assert done.returncode == 0, done.stderr
    run_id = run_id_of(done.stdout)
    assert done.stdout.splitlines()[0].endswith(f"on {server_url}")
    lines = event_lines(done.stdout)
    [retry] = [line for line in lines if line[:2] == ["review", "retry"]]
    assert retry[2:5] == ["attempt", "1", "failed:"]
    assert lines[-1] == ["run", "completed"]
    assert f"completed run {run_id} (text-fanout@1.0.0)" in done.stdout

    same_everywhere(
        ("runs", "list"),
        ("runs", "list", "--json"),
        ("runs", "show", run_id[:13]),
        ("runs", "show", run_id, "--events", "--json"),
        ("runs", "watch", run_id),  # a finished run: its events, then how it ended
        ("definitions", "list"),
        ("definitions", "show", "text-fanout", "--version", "1.0.0", "--json"),
        db_url=db_url,
        url=server_url,
    )

    detail = json.loads(podium("runs", "show", run_id, "--json", url=server_url).stdout)
    assert detail["run"]["outputs"]["report"]["output"] == {
        "words": 3,
        "loud": "THREE SHORT WORDS",
        "reviewedOnAttempt": 2,
    }
    review = next(s for s in detail["steps"] if s["stepId"] == "review")
    assert [a["outcome"] for a in review["attempts"]] == ["retry_scheduled", "completed"]
    assert "events" not in detail


def test_a_failed_run_is_retried_with_another_agent_and_watched_to_completion(
    db_url: str, server_url: str
) -> None:
    failed = podium("run", str(RECOVERY), url=server_url)
    run_id = run_id_of(failed.stdout)
    assert failed.returncode == 1
    assert one_error_line(failed) == (
        f"error: run {run_id} failed: step summarize: "
        "agent_execution_error: the summarizer model is overloaded"
    )
    listed = json_of(podium("runs", "list", "--status", "failed", "--json", url=server_url))
    assert [r["id"] for r in listed["items"]] == [run_id]

    retried = podium(
        "retry",
        run_id,
        "--step",
        "summarize",
        "--agent",
        "summarize=echo",
        "--note",
        "the summarizer is down",
        url=server_url,
    )
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout == (
        f"retrying step summarize of run {run_id} (generation 2); the run is running\n"
    )
    watched = podium("runs", "watch", run_id, url=server_url)

    assert watched.returncode == 0, watched.stderr
    lines = event_lines(watched.stdout)
    # a keyless call over HTTP is recorded with the caller's address (issue 7 §5)
    expected = ["summarize", "recovery", "retry", "by", "anonymous@127.0.0.1:"]
    assert [*expected, "the", "summarizer", "is", "down"] in lines
    assert lines[-1] == ["run", "completed"]
    assert f"completed run {run_id} (needs-a-hand@1.0.0)" in watched.stdout
    remote, local = both("runs", "show", run_id, "--json", db_url=db_url, url=server_url)
    assert remote == local
    summarize = next(s for s in json.loads(remote)["steps"] if s["stepId"] == "summarize")
    assert summarize["generation"] == 2
    assert summarize["metadata"]["manualRecovery"][0]["note"] == "the summarizer is down"

    for mode in ({"url": server_url}, {}):  # a completed run cannot be changed: 409
        again = podium("retry", run_id, db_url=db_url, **mode)
        assert again.returncode == 1
        assert one_error_line(again) == (
            f"error: run {run_id} is completed: it cannot be changed (retry)"
        )


def test_skip_lets_dependents_proceed_and_abort_stops_a_run(
    db_url: str, server_url: str, tmp_path: Path
) -> None:
    skippable = write(tmp_path, "skippable.yaml", SKIPPABLE)
    failed = podium("run", str(skippable), "--json", url=server_url)
    assert failed.returncode == 1
    run_id = json.loads(failed.stdout)["run"]["id"]
    step_record_id = json.loads(failed.stdout)["steps"][0]["stepRecordId"]

    skipped = podium(
        "skip",
        run_id,
        "--step",
        step_record_id,  # a stepRecordId works as well as a step id
        "--output",
        '{"topic": "skipped topic"}',
        "--note",
        "known outage",
        "--json",
        url=server_url,
    )
    action = json_of(skipped)
    assert (action["action"], action["stepId"]) == ("skip", "broken")
    watched = json_of(podium("runs", "watch", run_id, "--json", url=server_url))
    assert watched["run"]["status"] == "completed"
    assert watched["steps"][0]["status"] == "skipped"
    # stored like an agent's result, so dependents read it at steps.broken.output
    assert watched["steps"][0]["output"]["output"] == {"topic": "skipped topic"}
    assert watched["steps"][0]["output"]["skipped"] is True
    assert watched["run"]["outputs"]["after"]["output"] == {"text": "carried on"}

    slow = write(tmp_path, "slow.yaml", SLOW % 60)
    launched = json_of(podium("run", str(slow), "--no-follow", "--json", url=server_url))
    aborted = podium("abort", launched["id"], "--note", "changed my mind", url=server_url)
    assert aborted.returncode == 0, aborted.stderr
    assert aborted.stdout == f"aborted run {launched['id']}; the run is aborted\n"
    shown = json_of(podium("runs", "show", launched["id"], "--events", "--json", db_url=db_url))
    assert shown["run"]["status"] == "aborted"
    assert shown["events"][-1]["data"]["reason"] == "changed my mind"

    for mode in ({"url": server_url}, {}):
        again = podium("abort", launched["id"], db_url=db_url, **mode)
        assert one_error_line(again) == (
            f"error: run {launched['id']} is aborted: it cannot be changed (abort)"
        )


def test_definitions_push_once_and_a_changed_document_needs_a_new_version(
    db_url: str, server_url: str, tmp_path: Path
) -> None:
    tiny = write(tmp_path, "tiny.yaml", TINY)
    first = json_of(podium("run", str(tiny), "-p", "count=3", "--json", url=server_url))
    assert first["run"]["outputs"]["only"]["output"] == {"n": 3}
    again = podium("definitions", "push", str(tiny), url=server_url)
    assert again.stdout == "unchanged: tiny@2.1.0 (active) was pushed before\n"

    tiny.write_text(TINY.replace("{ n:", "{ m:"))
    changed = podium("run", str(tiny), url=server_url)
    assert changed.returncode == 1
    assert one_error_line(changed) == (
        "error: definition tiny version 2.1.0 already exists with another document; versions "
        f"are immutable: publish a new version (bump metadata.version in {tiny})"
    )

    tiny.write_text(TINY.replace("{ n:", "{ m:").replace("2.1.0", "2.2.0"))
    draft = podium("definitions", "push", str(tiny), "--draft", url=server_url)
    assert draft.stdout == "pushed tiny@2.2.0 (draft)\n"
    activated = podium("definitions", "activate", "tiny", "2.2.0", url=server_url)
    assert activated.stdout == "tiny@2.2.0 is active\n"
    remote, local = both("definitions", "show", "tiny", db_url=db_url, url=server_url)
    assert remote == local
    assert remote.startswith("definition    tiny@2.2.0\n")
    deactivated = podium("definitions", "deactivate", "tiny", "2.1.0", "--json", db_url=db_url)
    assert json_of(deactivated)["status"] == "inactive"
    listed = json_of(podium("definitions", "list", "--json", url=server_url))
    assert [(v["version"], v["status"]) for v in listed[0]["versions"]] == [
        ("2.2.0", "active"),
        ("2.1.0", "inactive"),
    ]


# -- errors ---------------------------------------------------------------------------------


def test_errors_are_one_line_and_the_same_over_http_as_locally(
    db_url: str, server_url: str, tmp_path: Path
) -> None:
    tiny = write(tmp_path, "tiny.yaml", TINY)
    run_id = json_of(podium("run", str(tiny), "--json", url=server_url))["run"]["id"]
    broken = write(
        tmp_path,
        "broken.yaml",
        TINY.replace("agent: echo", "agent: echo\n      depends_on: [nowhere]"),
    )

    cases = (
        ("runs", "show", "0123abcd-0000"),
        ("retry", run_id, "--step", "nowhere"),
        ("abort", run_id),
        ("definitions", "show", "no-such-definition"),
        ("definitions", "validate", str(broken)),
    )
    same_everywhere(*cases, db_url=db_url, url=server_url)
    unknown, no_step, completed, no_definition, invalid = podium_together(
        *cases, db_url=db_url, url=server_url
    )
    assert one_error_line(unknown) == "error: run 0123abcd-0000 not found"
    assert one_error_line(no_step) == f"error: step nowhere not found in run {run_id} (steps: only)"
    assert one_error_line(completed) == (
        f"error: run {run_id} is completed: it cannot be changed (abort)"
    )
    assert (
        one_error_line(no_definition)
        == "error: definition no-such-definition has no active version"
    )
    assert invalid.returncode == 2
    assert invalid.stderr == (
        f"error: {broken} is invalid: 1 problem(s)\n"
        "  orchestration.steps[0].depends_on[0]: unknown step 'nowhere'\n"
    )


def test_an_unreachable_server_is_one_line_naming_it(tmp_path: Path) -> None:
    url = "http://127.0.0.1:9"  # the discard port: nothing listens there
    tiny = write(tmp_path, "tiny.yaml", TINY)
    for args in (("runs", "list"), ("run", str(tiny)), ("abort", "01a22d17-5ccf")):
        result = podium(*args, url=url)
        assert result.returncode == 1, args
        assert one_error_line(result) == (
            f"error: cannot reach the Podium server at {url}: connection refused"
        )
    assert one_error_line(podium("runs", "list", "--url", "localhost:8080")).startswith(
        "error: PODIUM_URL: 'localhost:8080' is not an http:// or https:// URL"
    )


# -- API keys -------------------------------------------------------------------------------


def test_a_server_that_requires_keys_answers_only_with_one(db_url: str, tmp_path: Path) -> None:
    assert podium("migrate", db_url=db_url).returncode == 0
    created = podium(
        "keys",
        "create",
        "--org",
        "default",
        "--role",
        "admin",
        "--name",
        "ci",
        "--json",
        db_url=db_url,
    )
    key = json_of(created)["key"]
    viewer = json_of(
        podium("keys", "create", "--org", "default", "--role", "viewer", "--json", db_url=db_url)
    )["key"]
    with serving(db_url, tmp_path, PODIUM_REQUIRE_KEYS="true") as server:
        without = podium("runs", "list", url=server.url)
        assert one_error_line(without) == (
            "error: an API key is required: send 'Authorization: Bearer <key>' "
            "(give an API key with --api-key or PODIUM_API_KEY)"
        )
        wrong = podium("runs", "list", "--api-key", key[:-4] + "xxxx", url=server.url)
        assert wrong.returncode == 1
        assert one_error_line(wrong).startswith("error: ")
        refused = podium("definitions", "push", str(FANOUT), url=server.url, PODIUM_API_KEY=viewer)
        assert one_error_line(refused) == (
            "error: a viewer key cannot push definitions: it needs the admin role"
        )

        tiny = write(tmp_path, "tiny.yaml", TINY)
        done = podium("run", str(tiny), url=server.url, PODIUM_API_KEY=key)
        assert done.returncode == 0, done.stderr
        listed = podium("runs", "list", "--json", "--api-key", viewer, url=server.url)
        assert [r["definition"] for r in json_of(listed)["items"]] == ["tiny"]


# -- following the stream -------------------------------------------------------------------


# It kills a server at a moment read from the watch's output and starts another on the same
# port: beside a parallel suite on two cores the kill lands late, so it runs in the serial
# group, alone.
@pytest.mark.serial
def test_runs_watch_resumes_the_stream_when_the_server_restarts(
    db_url: str, tmp_path: Path
) -> None:
    slow = write(tmp_path, "slow.yaml", SLOW % 8)  # long enough to be killed while it runs
    with serving(db_url, tmp_path, **FAST_RECOVERY) as first:
        launched = json_of(podium("run", str(slow), "--no-follow", "--json", url=first.url))
        run_id = launched["id"]
        watch = start_podium("runs", "watch", run_id, db_url=db_url, url=first.url)
        try:
            assert watch.stdout is not None
            seen: list[str] = []
            for line in watch.stdout:  # wait until the 8 s step runs, then crash the server
                seen.append(line)
                if line.split()[1:3] == ["wait", "running"]:
                    break
            else:
                pytest.fail(f"never saw `wait` running: {seen} {watch.stderr}")
            first.kill()
            port = first.url.rsplit(":", 1)[1]
            with serving(db_url, tmp_path, port=int(port), name="second", **FAST_RECOVERY):
                out, err = watch.communicate(timeout=60)
        finally:
            stop(watch)

    assert watch.returncode == 0, err
    assert "Traceback" not in err
    lines = event_lines("".join(seen) + out)
    log = json_of(podium("runs", "show", run_id, "--events", "--json", db_url=db_url))["events"]
    assert len(lines) == len(log)  # every event exactly once, across the reconnection
    kinds = {"retry_scheduled": "retry", "action": "recovery"}
    assert [line[:2] for line in lines] == [
        [e["stepId"] or "run", kinds.get(kind, kind)]
        for e in log
        for kind in [e["type"].rsplit(".", 1)[1]]
    ]
    assert lines[-1] == ["run", "completed"]


class _DroppedStream(httpx.AsyncByteStream):
    """A response body that sends ``chunks`` and then loses the connection."""

    def __init__(self, chunks: list[bytes], *, drop: bool) -> None:
        self.chunks = chunks
        self.drop = drop

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        if self.drop:
            raise httpx.ReadError("connection reset by peer")


def _sse(sequence: int) -> bytes:
    event = EventView(
        id=f"e{sequence}",
        sequence=sequence,
        type="orchestration.step.running",
        runId="r1",
        organizationSlug="default",
        timestamp=datetime(2026, 1, 1, tzinfo=UTC),
        data={},
    )
    return f"id: {sequence}\nevent: {event.type}\ndata: {event.model_dump_json()}\n\n".encode()


async def test_a_dropped_stream_is_resumed_with_last_event_id() -> None:
    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        headers = {"content-type": "text/event-stream"}
        if len(requests) == 1:
            stream = _DroppedStream([_sse(1), b": keepalive\n\n", _sse(2), b"id: 3\nda"], drop=True)
        else:
            end = b'event: complete\ndata: {"type": "complete", "status": "completed"}\n\n'
            stream = _DroppedStream([_sse(2), _sse(3), end], drop=False)
        return httpx.Response(200, headers=headers, stream=stream)

    backend = RemoteBackend("http://podium.test", transport=httpx.MockTransport(answer))
    with backend:
        got = [e.sequence async for e in backend.follow_events("r1")]

    assert got == [1, 2, 3]  # the replayed event 2 is not given twice
    assert "last-event-id" not in requests[0].headers
    assert requests[1].headers["last-event-id"] == "2"
    assert requests[1].url.path == "/api/orchestrations/r1/stream"


async def test_a_stream_of_an_unknown_run_is_the_server_s_not_found() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        problem = {"title": "Not found", "status": 404, "detail": "run r9 not found"}
        return httpx.Response(404, json={**problem, "code": "not_found"})

    backend = RemoteBackend("http://podium.test", transport=httpx.MockTransport(answer))
    with backend, pytest.raises(NotFound, match="run r9 not found"):
        await asyncio.wait_for(anext(aiter(backend.follow_events("r9"))), 10)
