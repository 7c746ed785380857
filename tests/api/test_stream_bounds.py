"""T2 (fast part, both databases): a step's output is stored once (its event carries a
marker, so does the run row), ``GET /api/orchestrations/RUN`` carries it once, and a follower
hands out bounded events and holds at most its byte budget."""

from __future__ import annotations

import json
from typing import Any

import httpx

from podium.agents.registry.resolver import LocalAgents
from podium.events.follower import EventFollower, StreamEnd
from podium.events.hub import WakeHub
from podium.storage.records import EventRecord
from podium.storage.store import SqlStore
from podium.storage.tables import events, runs
from tests.support import fast_settings, run_to_end

SIZE = 200_000
DOC = """
metadata: {name: wide, version: 1.0.0}
orchestration:
  parameters:
    - {name: blob, type: string}
  steps:
""" + "".join(
    f"    - {{id: s{i}, agent: echo, input: {{text: '{{{{ parameters.blob }}}}'}}}}\n"
    for i in range(6)
)


async def test_large_outputs_are_stored_once_and_streamed_bounded(
    store: SqlStore, db_url: str
) -> None:
    """T2: events hold ``{"truncated": true, "bytes": N}``; the step record the output."""
    run = await run_to_end(store, fast_settings(db_url), DOC, {"blob": "y" * SIZE}, timeout=120)
    assert run.status == "completed"
    # each output's own size: they differ by a few bytes (the agent's timings)
    sizes = {
        s.step_id: len(json.dumps(s.output, separators=(",", ":"))) for s in store.steps_of(run.id)
    }
    assert min(sizes.values()) > SIZE
    markers = {s: {"truncated": True, "bytes": n} for s, n in sizes.items()}
    events = store.events_after(run.id, 0, 1000)
    done = [e for e in events if e.type == "orchestration.step.completed"]
    assert len(done) == 6
    assert all(e.data["output"] == markers[str(e.step_id)] for e in done)

    follower = EventFollower(
        store, WakeHub(store), run.id, keepalive=5, recheck=0.5, max_held_bytes=4096
    )
    seen = []
    most_held = 0
    async for item in follower.items():
        most_held = max(most_held, follower.held)
        seen.append(item)
        if isinstance(item, StreamEnd):
            break
    assert [e.sequence for e in seen[:-1]] == [e.sequence for e in events]
    end = seen[-1]
    assert isinstance(end, StreamEnd)
    assert end.run.outputs is not None
    assert end.run.outputs == markers
    assert most_held < len(events)  # the byte budget split the log into several pages


BIG_OUTPUT = 30 * 1024 * 1024
ONE_BIG = """
metadata: {name: one-big, version: 1.0.0}
orchestration:
  steps:
    - {id: make, agent: blow-up, input: {bytes: 31457280}}
"""


async def blow_up(input: Any) -> dict[str, str]:
    """A large output from a small input."""
    return {"text": "z" * int(input["bytes"])}


async def test_a_run_with_one_large_output_reads_back_with_it_once(
    store: SqlStore, db_url: str, client: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    """T2: a 30 MB output comes back as about 30 MB from the run detail, not 120 MB: the
    step record holds it; the run's outputs, its events and parameters hold no copy."""
    agents = LocalAgents()
    agents.add_python("blow-up", blow_up)
    settings = fast_settings(db_url, max_output_bytes=BIG_OUTPUT + 1024 * 1024)
    run = await run_to_end(store, settings, ONE_BIG, {}, agents=agents, timeout=120)
    assert run.status == "completed"
    response = await client.get(f"/api/orchestrations/{run.id}", headers=acme)
    assert response.status_code == 200
    assert BIG_OUTPUT < len(response.content) < BIG_OUTPUT + 64 * 1024
    detail = response.json()
    [step] = detail["steps"]
    assert step["output"]["output"] == {"text": "z" * BIG_OUTPUT}
    size = len(json.dumps(step["output"], separators=(",", ":")))
    marker = {"truncated": True, "bytes": size}
    assert detail["run"]["outputs"] == {"make": marker}
    assert store.get_run(run.id).outputs == {"make": marker}  # the row holds no copy
    assert sum(len(json.dumps(e.data)) for e in store.events_after(run.id)) < 64 * 1024


async def test_rows_written_before_values_were_bounded_are_streamed_bounded(
    store: SqlStore, db_url: str
) -> None:
    """T2: a run row holding full copies of its leaf outputs, and an event holding a large
    value (as an older Podium wrote them), still reach a stream as markers."""
    run = await run_to_end(store, fast_settings(db_url), DOC, {"blob": "y" * SIZE}, timeout=120)
    full = {s.step_id: s.output for s in store.steps_of(run.id)}
    markers = {
        s: {"truncated": True, "bytes": len(json.dumps(v, separators=(",", ":")))}
        for s, v in full.items()
    }
    store.db.write(
        lambda conn: conn.execute(runs.update().where(runs.c.id == run.id).values(outputs=full))
    )
    store.db.write(
        lambda conn: conn.execute(
            events.update()
            .where(events.c.run_id == run.id, events.c.sequence == 1)
            .values(data={"status": "planning", "parameters": {"blob": "y" * SIZE}})
        )
    )
    assert store.get_run(run.id).outputs == full  # an old row: full copies
    follower = EventFollower(store, WakeHub(store), run.id, keepalive=5, recheck=0.5)
    seen = [item async for item in follower.items()]
    end = seen[-1]
    assert isinstance(end, StreamEnd)
    assert end.run.outputs == markers
    first = seen[0]
    assert isinstance(first, EventRecord)
    size = len(json.dumps({"blob": "y" * SIZE}, separators=(",", ":")))
    assert first.data == {"status": "planning", "parameters": {"truncated": True, "bytes": size}}
