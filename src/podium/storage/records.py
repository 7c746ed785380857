"""Plain records that storage hands to the layers above (no SQL types leak out)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # an annotation only: reading records does not load the definition model
    from podium.domain.definition import Definition


@dataclass(frozen=True)
class RunRecord:
    id: str
    organization_slug: str
    definition_name: str
    definition_version: str
    status: str
    parameters: dict[str, Any]
    outputs: dict[str, Any] | None
    error: dict[str, Any] | None
    metadata: dict[str, Any]
    parent_run_id: str | None
    parent_step_record_id: str | None
    max_parallel_steps: int
    last_sequence: int
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    updated_at: datetime
    deadline_at: datetime | None
    recovery_in_flight: dict[str, Any] | None = None
    # child runs: the top of the tree (a root names itself), depth below it, and the
    # attempt of the parent step that created this run
    root_run_id: str | None = None
    depth: int = 0
    parent_generation: int | None = None
    parent_attempt: int | None = None


@dataclass(frozen=True)
class RunPosition:
    """Where a run is: what a live stream reads on each wake-up (two small columns)."""

    status: str
    last_sequence: int


@dataclass(frozen=True)
class RunEnd:
    """How a run ended, as a live stream's last message tells it: ``outputs`` holds the
    leaf steps' outputs with large values as ``{"truncated": true, "bytes": N}`` (the full
    values are in the step records)."""

    id: str
    status: str
    last_sequence: int
    outputs: dict[str, Any] | None
    error: dict[str, Any] | None


@dataclass(frozen=True)
class StepRecord:
    id: str
    run_id: str
    step_id: str
    position: int
    type: str
    agent: str | None
    status: str
    input: Any
    output: Any
    error: dict[str, Any] | None
    attempt: int
    generation: int
    recoveries: int
    claim_token: int
    lease_owner: str | None
    lease_expires_at: datetime | None
    available_at: datetime | None
    queued_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    updated_at: datetime
    metadata: dict[str, Any]


@dataclass(frozen=True)
class AttemptRecord:
    step_record_id: str
    attempt: int
    generation: int
    claim_token: int
    worker_id: str | None
    outcome: str
    error: dict[str, Any] | None
    started_at: datetime | None
    ended_at: datetime | None


@dataclass(frozen=True)
class EventRecord:
    id: str
    run_id: str
    sequence: int
    type: str
    organization_slug: str
    timestamp: datetime
    step_id: str | None
    step_record_id: str | None
    data: dict[str, Any]

    def envelope(self) -> dict[str, Any]:
        """The event as spec section 10 shows it (camelCase, ISO timestamps)."""
        out: dict[str, Any] = {
            "id": self.id,
            "sequence": self.sequence,
            "type": self.type,
            "runId": self.run_id,
            "organizationSlug": self.organization_slug,
            "timestamp": self.timestamp.isoformat(),
            "data": self.data,
        }
        if self.step_id is not None:
            out["stepId"] = self.step_id
            out["stepRecordId"] = self.step_record_id
        return out


@dataclass(frozen=True)
class ClaimedStep:
    """A step this worker holds a lease on, with everything needed to run it."""

    step_record_id: str
    run_id: str
    step_id: str
    organization_slug: str
    attempt: int
    generation: int
    claim_token: int
    worker_id: str
    definition: Definition
    parameters: dict[str, Any]
    upstream: dict[str, Any]
    started_at: datetime
    deadline_at: datetime | None
    metadata: dict[str, Any] = field(default_factory=dict)
    # the steps whose outputs this step reads; validation made sure they are all upstream
    readable_steps: frozenset[str] = frozenset()
    # when the step became queued (metrics: queue time); None where unknown
    queued_at: datetime | None = None

    @property
    def idempotency_key(self) -> str:
        """``{runId}:{stepRecordId}:{generation}``: same across retries and crash recovery."""
        return f"{self.run_id}:{self.step_record_id}:{self.generation}"


@dataclass(frozen=True)
class LaunchRequest:
    definition: Definition
    parameters: dict[str, Any]
    organization_slug: str
    parent_run_id: str | None = None
    parent_step_record_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # child runs (see podium.storage.children): the id to give the run (None: a new one),
    # the tree's root, the depth below it, and the parent step attempt that creates it
    run_id: str | None = None
    root_run_id: str | None = None
    depth: int = 0
    parent_generation: int | None = None
    parent_attempt: int | None = None


@dataclass(frozen=True)
class WorkerRecord:
    id: str
    hostname: str
    pid: int
    concurrency: int
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None
    version: str | None = None  # None: registered by a Podium that did not record it
