"""``GET /api/orchestrations/{runId}/stream``: Server-Sent Events against a real uvicorn
server (in a thread of this process) on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import socket
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from podium.domain.ids import new_id
from podium.events import PAGE_SIZE, active_followers
from podium.settings import Settings
from podium.storage.store import SqlStore
from podium.storage.tables import events, runs
from tests.api.helpers import FAILING, assert_problem, bearer
from tests.api.test_stream_support import (
    Message,
    chain,
    follow_with_random_disconnects,
    launched,
    read_sse,
    server,
    stored_log,
    stream_url,
    until,
)
from tests.support import wait_terminal

KeyMaker = Any


async def test_e1_reconnecting_client_sees_every_event_once_in_order(
    store: SqlStore, settings: Settings, make_key: KeyMaker
) -> None:
    """E1: a client disconnected at random points (often in the middle of an event) and
    resuming with Last-Event-ID sees every event exactly once, in order, identical to the
    stored log, and then the final ``complete`` event."""
    seed = random.randrange(1 << 30)
    headers = bearer(make_key("acme", "viewer"))
    async with server(store, settings, worker=True) as base:
        run_id = await launched(store, chain(30))
        got = await follow_with_random_disconnects([base], run_id, headers, rng=random.Random(seed))
    log = await asyncio.to_thread(stored_log, store, run_id)
    context = f"seed {seed}, {got.connections} connections"
    assert [m.json() for m in got.events] == log, context
    assert [m.id for m in got.events] == [str(e["sequence"]) for e in log], context
    assert [m.event for m in got.events] == [e["type"] for e in log], context
    assert [e["sequence"] for e in log] == list(range(1, len(log) + 1))
    assert log[-1]["type"] == "orchestration.run.completed"
    assert got.end is not None
    assert got.end.event == "complete"
    assert got.end.json()["lastSequence"] == len(log)
    assert got.connections >= 5, context
    assert got.cut_mid_event >= 1, context


async def test_replay_resumes_after_the_given_sequence_and_ends(
    store: SqlStore, settings: Settings, make_key: KeyMaker
) -> None:
    """A finished run replays from ``?after=`` or ``Last-Event-ID`` (the header wins), then
    sends ``complete`` with the run's outputs and closes the stream."""
    headers = bearer(make_key("acme", "viewer"))
    run_id = await launched(store, chain(2, seconds=0))
    async with server(store, settings, worker=True) as base, httpx.AsyncClient() as client:
        await wait_terminal(store, run_id)
        log = await asyncio.to_thread(stored_log, store, run_id)
        everything, ended = await read_sse(client, stream_url(base, run_id), headers)
        assert ended
        assert [m.json() for m in everything[:-1]] == log
        end = everything[-1]
        assert end.event == "complete"
        assert end.id is None
        assert end.json() == {
            "type": "complete",
            "runId": run_id,
            "status": "completed",
            "lastSequence": len(log),
            "outputs": store.get_run(run_id).outputs,
            "error": None,
        }
        tail, _ = await read_sse(client, stream_url(base, run_id, "?after=3"), headers)
        assert [m.json() for m in tail[:-1]] == log[3:]
        resumed, _ = await read_sse(
            client, stream_url(base, run_id, "?after=1"), headers | {"Last-Event-ID": "4"}
        )
        assert [m.json() for m in resumed[:-1]] == log[4:]
        nothing_left, _ = await read_sse(
            client, stream_url(base, run_id), headers | {"Last-Event-ID": str(len(log))}
        )
        assert [m.event for m in nothing_left] == ["complete"]


async def test_a_failed_run_ends_with_an_error_event(
    store: SqlStore, settings: Settings, make_key: KeyMaker
) -> None:
    """A run that failed ends its stream with ``error`` carrying the run's error."""
    headers = bearer(make_key("acme", "viewer"))
    run_id = await launched(store, FAILING)
    async with server(store, settings, worker=True) as base, httpx.AsyncClient() as client:
        messages, ended = await read_sse(client, stream_url(base, run_id), headers)
    assert ended
    end = messages[-1]
    assert end.event == "error"
    body = end.json()
    assert body["type"] == "error"
    assert body["status"] == "failed"
    assert body["error"]["stepId"] == "shaky"
    assert messages[-2].event == "orchestration.run.failed"


async def test_e2_keepalive_while_idle_then_end_after_abort(
    store: SqlStore, settings: Settings, make_key: KeyMaker
) -> None:
    """E2: while nothing happens, a keepalive comment arrives within keepalive_seconds of
    the last message; when the run is aborted the stream sends its events, an ``error``
    event, and ends."""
    keepalive = 1.0
    headers = bearer(make_key("acme", "viewer"))
    run_id = await launched(store, chain(1))  # no worker: it stays queued
    log = await asyncio.to_thread(stored_log, store, run_id)
    seen: list[Message] = []
    async with (
        server(store, settings, worker=False, keepalive_seconds=keepalive) as base,
        httpx.AsyncClient() as client,
    ):

        def three_keepalives(message: Message) -> bool:
            seen.append(message)
            return sum(m.comment == "keepalive" for m in seen) == 3

        url = stream_url(base, run_id)
        started = time.monotonic()
        await read_sse(client, url, headers, on_message=three_keepalives)
        assert [m.json() for m in seen if m.event] == log
        times = [started] + [m.at for m in seen]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert max(gaps) <= keepalive, gaps

        async def abort_soon() -> None:
            await until(lambda: len(active_followers(run_id)) == 1, what="stream open")
            await asyncio.to_thread(store.abort, run_id, actor="test", reason="enough")

        await until(lambda: not active_followers(run_id), what="first stream gone")
        aborter = asyncio.create_task(abort_soon())
        async with asyncio.timeout(10):
            after, ended = await read_sse(client, url, headers | {"Last-Event-ID": "3"})
        await aborter
    assert ended, "the stream did not end after the terminal event"
    kinds = [m.event for m in after if m.event]
    assert kinds[-2:] == ["orchestration.run.aborted", "error"]
    assert after[-1].json()["status"] == "aborted"


async def test_e2_a_client_that_stops_reading_holds_at_most_one_page(
    store: SqlStore, settings: Settings, make_key: KeyMaker
) -> None:
    """E2: a client that never reads its stream of a run with 32 MB of events does not make
    the server read them all: its follower stays a few hundred events in, holding at most
    one page, while another client reads everything; when it goes away, so does its
    follower."""
    key = make_key("acme", "viewer")
    run_id = await launched(store, chain(1))  # no worker: stays running with what we add
    total = await asyncio.to_thread(add_big_events, store, run_id, count=2000, size=16_000)
    async with server(store, settings, worker=False) as base, httpx.AsyncClient() as client:
        host, port = base.removeprefix("http://").split(":")
        stuck = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        try:
            await asyncio.to_thread(stuck.connect, (host, int(port)))
            request = (
                f"GET /api/orchestrations/{run_id}/stream HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bearer {key}\r\nAccept: text/event-stream\r\n\r\n"
            )
            stuck.sendall(request.encode())
            await until(lambda: len(active_followers(run_id)) == 1, what="stuck stream open")
            (stuck_follower,) = active_followers(run_id)

            def read_to_the_end(message: Message) -> bool:
                return message.id == str(total)

            messages, _ = await read_sse(
                client, stream_url(base, run_id), bearer(key), on_message=read_to_the_end
            )
            assert len([m for m in messages if m.event]) == total
            assert stuck_follower.position < total // 2, stuck_follower.position
            assert stuck_follower.held <= PAGE_SIZE
        finally:
            stuck.close()
        await until(
            lambda: stuck_follower not in active_followers(run_id),
            what="the vanished client's follower to go",
        )


def add_big_events(store: SqlStore, run_id: str, *, count: int, size: int) -> int:
    """Append ``count`` events of about ``size`` bytes to the run's log (as the engine would
    for steps with big outputs); returns the run's last sequence."""
    first = store.get_run(run_id).last_sequence + 1
    now = datetime.now(UTC)
    rows = [
        {
            "id": new_id(),
            "run_id": run_id,
            "sequence": seq,
            "type": "orchestration.step.completed",
            "organization_slug": "acme",
            "timestamp": now,
            "step_id": "s0",
            "step_record_id": None,
            "data": {"output": "x" * size},
        }
        for seq in range(first, first + count)
    ]
    last = first + count - 1

    def write(conn: Any) -> None:
        for i in range(0, len(rows), 200):
            conn.execute(events.insert(), rows[i : i + 200])
        conn.execute(runs.update().where(runs.c.id == run_id).values(last_sequence=last))

    store.db.write(write)
    return last


async def test_another_organizations_or_unknown_run_is_a_404_problem(
    store: SqlStore, settings: Settings, make_key: KeyMaker
) -> None:
    """The stream is scoped like every other read: 404 problem, nothing leaked."""
    run_id = await launched(store, chain(1), organization="globex")
    acme = bearer(make_key("acme", "admin"))
    async with server(store, settings, worker=False) as base, httpx.AsyncClient() as client:
        for target in (run_id, run_id[:12], new_id()):
            response = await client.get(stream_url(base, target), headers=acme)
            body = assert_problem(response, 404, "not_found")
            assert "globex" not in json.dumps(body)
        no_key = await client.get(stream_url(base, run_id))
        assert_problem(no_key, 401, "unauthorized")
        bad_resume = await client.get(
            stream_url(base, run_id), headers=bearer(make_key("globex")) | {"Last-Event-ID": "x"}
        )
        assert_problem(bad_resume, 422, "validation_error")
        globex = bearer(make_key("globex"))
        for query in ("?after=-1", f"?after={2**31}"):
            response = await client.get(stream_url(base, run_id, query), headers=globex)
            assert_problem(response, 422, "validation_error")
        too_far = await client.get(
            stream_url(base, run_id), headers=globex | {"Last-Event-ID": str(2**31)}
        )
        assert_problem(too_far, 422, "validation_error")


@pytest.mark.parametrize("prefix", [True, False])
async def test_a_run_id_prefix_streams_the_run(
    store: SqlStore, settings: Settings, make_key: KeyMaker, prefix: bool
) -> None:
    """Like the other run routes, the stream accepts a unique prefix of the run id."""
    headers = bearer(make_key("acme", "viewer"))
    run_id = await launched(store, chain(1, seconds=0))
    async with server(store, settings, worker=True) as base, httpx.AsyncClient() as client:
        await wait_terminal(store, run_id)
        target = run_id[:13] if prefix else run_id
        messages, ended = await read_sse(client, stream_url(base, target), headers)
    assert ended
    assert messages[-1].json()["runId"] == run_id
