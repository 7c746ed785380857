"""The JSON shapes of Podium's objects, shared by the HTTP API (responses), the CLI
(rendering, both local and over HTTP) and clients. Field names are the API's (camelCase)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict

from podium.domain.limits import readable_json

if TYPE_CHECKING:  # only the ``of`` constructors name them; the CLI imports views at start
    from podium.storage.definitions import DefinitionRecord
    from podium.storage.keys import ApiKeyRecord
    from podium.storage.records import AttemptRecord, EventRecord, RunRecord, StepRecord
    from podium.storage.recovery import ActionResult

T = TypeVar("T")

# A stored JSON value as shown: parts nesting too deeply to serialise become a truncation
# marker, so that reading a run back never fails whatever it holds (target L3).
Json = Annotated[Any, BeforeValidator(readable_json)]
JsonObject = Annotated[dict[str, Any], BeforeValidator(readable_json)]


class View(BaseModel):
    model_config = ConfigDict(frozen=True)


class RunSummary(View):
    id: str
    organizationSlug: str
    definition: str
    version: str
    status: str
    createdAt: datetime
    startedAt: datetime | None = None
    endedAt: datetime | None = None
    updatedAt: datetime
    parentRunId: str | None = None
    error: JsonObject | None = None

    @classmethod
    def of(cls, run: RunRecord) -> RunSummary:
        return cls(
            id=run.id,
            organizationSlug=run.organization_slug,
            definition=run.definition_name,
            version=run.definition_version,
            status=run.status,
            createdAt=run.created_at,
            startedAt=run.started_at,
            endedAt=run.ended_at,
            updatedAt=run.updated_at,
            parentRunId=run.parent_run_id,
            error=run.error,
        )


class RunView(RunSummary):
    parameters: JsonObject
    outputs: JsonObject | None = None
    metadata: JsonObject
    maxParallelSteps: int
    deadlineAt: datetime | None = None
    parentStepRecordId: str | None = None
    lastSequence: int
    recoveryInFlight: dict[str, Any] | None = None

    @classmethod
    def of(cls, run: RunRecord) -> RunView:
        return cls(
            **RunSummary.of(run).model_dump(),
            parameters=run.parameters,
            outputs=run.outputs,
            metadata=run.metadata,
            maxParallelSteps=run.max_parallel_steps,
            deadlineAt=run.deadline_at,
            parentStepRecordId=run.parent_step_record_id,
            lastSequence=run.last_sequence,
            recoveryInFlight=run.recovery_in_flight,
        )


class StepView(View):
    stepRecordId: str
    runId: str
    stepId: str
    position: int
    type: str
    agent: str | None = None
    status: str
    attempt: int
    generation: int
    recoveries: int
    input: Json = None
    output: Json = None
    error: JsonObject | None = None
    queuedAt: datetime | None = None
    startedAt: datetime | None = None
    endedAt: datetime | None = None
    leaseOwner: str | None = None
    leaseExpiresAt: datetime | None = None
    nextRetryAt: datetime | None = None
    maxAttempts: int | None = None
    metadata: JsonObject

    @classmethod
    def of(cls, step: StepRecord, *, max_attempts: int | None = None) -> StepView:
        return cls(
            stepRecordId=step.id,
            runId=step.run_id,
            stepId=step.step_id,
            position=step.position,
            type=step.type,
            agent=step.agent,
            status=step.status,
            attempt=step.attempt,
            generation=step.generation,
            recoveries=step.recoveries,
            input=step.input,
            output=step.output,
            error=step.error,
            queuedAt=step.queued_at,
            startedAt=step.started_at,
            endedAt=step.ended_at,
            leaseOwner=step.lease_owner,
            leaseExpiresAt=step.lease_expires_at,
            nextRetryAt=step.available_at if step.status == "pending" else None,
            maxAttempts=max_attempts,
            metadata=step.metadata,
        )


class AttemptView(View):
    attempt: int
    generation: int
    claimToken: int
    workerId: str | None = None
    outcome: str
    error: JsonObject | None = None
    startedAt: datetime | None = None
    endedAt: datetime | None = None

    @classmethod
    def of(cls, a: AttemptRecord) -> AttemptView:
        return cls(
            attempt=a.attempt,
            generation=a.generation,
            claimToken=a.claim_token,
            workerId=a.worker_id,
            outcome=a.outcome,
            error=a.error,
            startedAt=a.started_at,
            endedAt=a.ended_at,
        )


class StepDetail(StepView):
    attempts: list[AttemptView]


class RunDetail(View):
    run: RunView
    steps: list[StepView]
    approvals: list[dict[str, Any]]
    parent: RunSummary | None = None
    children: list[RunSummary]


class Progress(View):
    total: int
    completed: int
    skipped: int
    failed: int
    running: int
    queued: int
    pending: int
    checkpointPending: int
    aborted: int
    percent: float


class RunStatusView(View):
    """The compact status the runbook checks first."""

    runId: str
    status: str
    definition: str
    version: str
    progress: Progress
    currentSteps: list[str]
    steps: dict[str, str]
    pendingApprovals: list[dict[str, Any]]
    error: dict[str, Any] | None = None
    recoveryInFlight: dict[str, Any] | None = None
    updatedAt: datetime


class EventView(View):
    id: str
    sequence: int
    type: str
    runId: str
    organizationSlug: str
    timestamp: datetime
    stepId: str | None = None
    stepRecordId: str | None = None
    data: JsonObject

    @classmethod
    def of(cls, e: EventRecord) -> EventView:
        return cls(
            id=e.id,
            sequence=e.sequence,
            type=e.type,
            runId=e.run_id,
            organizationSlug=e.organization_slug,
            timestamp=e.timestamp,
            stepId=e.step_id,
            stepRecordId=e.step_record_id,
            data=e.data,
        )


class DefinitionView(View):
    name: str
    version: str
    status: str
    organizationSlug: str
    displayName: str | None = None
    description: str | None = None
    createdAt: datetime
    updatedAt: datetime
    document: dict[str, Any] | None = None

    @classmethod
    def of(cls, d: DefinitionRecord, *, document: bool = True) -> DefinitionView:
        return cls(
            name=d.name,
            version=d.version,
            status=d.status,
            organizationSlug=d.organization_slug,
            displayName=d.display_name,
            description=d.description,
            createdAt=d.created_at,
            updatedAt=d.updated_at,
            document=d.document if document else None,
        )


class DefinitionSummary(View):
    name: str
    organizationSlug: str
    displayName: str | None = None
    latestActive: str | None = None
    versions: list[DefinitionView]


class ValidationView(View):
    valid: bool
    name: str | None = None
    version: str | None = None
    steps: int | None = None
    issues: list[dict[str, str]]


class ActionView(View):
    action: str
    runId: str
    runStatus: str
    stepRecordId: str | None = None
    stepId: str | None = None
    generation: int | None = None

    @classmethod
    def of(cls, r: ActionResult) -> ActionView:
        return cls(
            action=r.action,
            runId=r.run_id,
            runStatus=r.run_status,
            stepRecordId=r.step_record_id,
            stepId=r.step_id,
            generation=r.generation,
        )


class ApiKeyView(View):
    id: str
    organizationSlug: str
    role: str
    name: str
    createdAt: datetime
    lastUsedAt: datetime | None = None
    revokedAt: datetime | None = None

    @classmethod
    def of(cls, k: ApiKeyRecord) -> ApiKeyView:
        return cls(
            id=k.id,
            organizationSlug=k.organization_slug,
            role=k.role,
            name=k.name,
            createdAt=k.created_at,
            lastUsedAt=k.last_used_at,
            revokedAt=k.revoked_at,
        )


class CreatedApiKey(ApiKeyView):
    key: str  # shown once


class Page(View, Generic[T]):
    items: list[T]
    nextCursor: str | None = None


class RunTreeNode(View):
    """One run of a tree of runs (issue 11): the run, its children, theirs, ... in
    depth-first order; ``depth`` counts from the run asked for (0)."""

    id: str
    definition: str
    version: str
    status: str
    depth: int
    parentRunId: str | None = None
    parentStepId: str | None = None
    createdAt: datetime
    startedAt: datetime | None = None
    endedAt: datetime | None = None
    stepsTotal: int
    stepsDone: int
