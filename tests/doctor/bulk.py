"""Bulk rows for the doctor's no-false-positives test and its benchmark: many runs written
straight into the tables (a real engine would take minutes to make 100,000).

The rows are what the engine leaves behind: completed runs with completed steps, failed runs
with one failed step (the others aborted or completed), running runs with one step running
under a fresh lease of a live worker, one queued and one pending behind it; each run's last
event is its ``last_sequence``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from podium.storage import tables
from podium.storage.store import SqlStore

SNAPSHOT: dict[str, Any] = {
    "metadata": {"name": "bulk", "version": "1.0.0"},
    "orchestration": {
        "steps": [
            {"id": "a", "agent": "echo", "input": {}},
            {"id": "b", "agent": "echo", "input": {}, "depends_on": ["a"]},
            {"id": "c", "agent": "echo", "input": {}, "depends_on": ["b"]},
        ]
    },
}
BATCH = 2000


def _run(
    rid: str, org: str, status: str, created: datetime, ended: datetime | None
) -> dict[str, Any]:
    return {
        "id": rid,
        "organization_slug": org,
        "definition_name": "bulk",
        "definition_version": "1.0.0",
        "snapshot": SNAPSHOT,
        "parameters": {},
        "status": status,
        "max_parallel_steps": 4,
        "metadata": {},
        "last_sequence": 1,
        "created_at": created,
        "started_at": created,
        "ended_at": ended,
        "updated_at": ended or created,
        "deadline_at": None,
    }


def _step(rid: str, index: int, status: str, t: datetime, **extra: Any) -> dict[str, Any]:
    finished = status in ("completed", "failed", "aborted")
    started = status in ("running", "completed", "failed")
    row = {
        "id": str(uuid.uuid4()),
        "run_id": rid,
        "step_id": "abc"[index],
        "position": index,
        "type": "agent",
        "agent": "echo",
        "status": status,
        "input": {"n": index},
        "attempt": 1 if started else 0,
        "deps_remaining": 0 if index == 0 or status != "pending" else 1,
        "queued_at": t if status != "pending" else None,
        "started_at": t + timedelta(milliseconds=50) if started else None,
        "ended_at": t + timedelta(milliseconds=300) if finished else None,
        "updated_at": t,
        "metadata": {},
        "lease_owner": None,
        "lease_expires_at": None,
    }
    row.update(extra)
    return row


def _plan(
    count: int, now: datetime, worker_id: str, running_share: float
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]]:
    running_every = max(1, round(1 / running_share)) if running_share > 0 else 0
    for i in range(count):
        rid = str(uuid.uuid4())
        org = ("acme", "globex", "initech")[i % 3]
        # spread over the last day, the newest the running ones
        created = now - timedelta(seconds=30 + (count - i) * 86_400 / max(count, 1))
        if running_every and i % running_every == 0:
            created = now - timedelta(seconds=5)
            lease = now + timedelta(seconds=60)
            run = _run(rid, org, "running", created, None)
            steps = [
                _step(rid, 0, "running", created, lease_owner=worker_id, lease_expires_at=lease),
                _step(rid, 1, "pending", created),
                _step(rid, 2, "pending", created),
            ]
            event_at = now - timedelta(seconds=1)
        elif i % 10 == 1:
            ended = created + timedelta(seconds=1)
            run = _run(rid, org, "failed", created, ended)
            steps = [
                _step(rid, 0, "completed", created),
                _step(rid, 1, "failed", created, error={"code": "agent_execution_error"}),
                _step(rid, 2, "aborted", created),
            ]
            event_at = ended
        else:
            ended = created + timedelta(seconds=1)
            run = _run(rid, org, "completed", created, ended)
            steps = [_step(rid, k, "completed", created + timedelta(seconds=k)) for k in range(3)]
            event_at = ended
        event = {
            "id": str(uuid.uuid4()),
            "run_id": rid,
            "sequence": 1,
            "type": "orchestration.run.updated",
            "organization_slug": org,
            "timestamp": event_at,
            "data": {},
        }
        yield run, steps, event


def populate(store: SqlStore, count: int, *, running_share: float = 0.01) -> str:
    """Write ``count`` runs (with three steps and one event each) and a live worker that
    holds the running steps; returns the worker id."""
    now = datetime.now(UTC)
    worker_id = f"bulk-{uuid.uuid4().hex[:8]}"
    store.register_worker(worker_id, 32)
    batch: list[tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]] = []

    def flush() -> None:
        def tx(conn: sa.Connection) -> None:
            conn.execute(tables.runs.insert(), [b[0] for b in batch])
            conn.execute(tables.steps.insert(), [s for b in batch for s in b[1]])
            conn.execute(tables.events.insert(), [b[2] for b in batch])

        store.db.write(tx)
        batch.clear()

    for item in _plan(count, now, worker_id, running_share):
        batch.append(item)
        if len(batch) >= BATCH:
            flush()
    if batch:
        flush()
    return worker_id
