"""T2 (fast part, both databases): a step's output is stored once (its event carries a
marker), a follower hands out bounded events and holds at most its byte budget."""

from __future__ import annotations

import json

from podium.events.follower import EventFollower, StreamEnd
from podium.events.hub import WakeHub
from podium.storage.store import SqlStore
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
    steps = {s.step_id: s for s in store.steps_of(run.id)}
    full = json.dumps(steps["s0"].output, separators=(",", ":"))
    assert len(full) > SIZE
    events = store.events_after(run.id, 0, 1000)
    done = [e for e in events if e.type == "orchestration.step.completed"]
    assert len(done) == 6
    assert all(e.data["output"] == {"truncated": True, "bytes": len(full)} for e in done)

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
    assert all(v == {"truncated": True, "bytes": len(full)} for v in end.run.outputs.values())
    assert most_held < len(events)  # the byte budget split the log into several pages
