"""Event type names (spec section 10). The event log is the single source for SSE, WebSocket,
webhooks and the audit trail."""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    RUN_CREATED = "orchestration.run.created"
    RUN_UPDATED = "orchestration.run.updated"
    RUN_COMPLETED = "orchestration.run.completed"
    RUN_FAILED = "orchestration.run.failed"
    RUN_ABORTED = "orchestration.run.aborted"
    STEP_QUEUED = "orchestration.step.queued"
    STEP_RUNNING = "orchestration.step.running"
    STEP_PROGRESS = "orchestration.step.progress"
    STEP_COMPLETED = "orchestration.step.completed"
    STEP_FAILED = "orchestration.step.failed"
    STEP_RETRY_SCHEDULED = "orchestration.step.retry_scheduled"
    STEP_SKIPPED = "orchestration.step.skipped"
    STEP_CHECKPOINT_PENDING = "orchestration.step.checkpoint_pending"
    CHECKPOINT_REQUESTED = "orchestration.checkpoint.requested"
    CHECKPOINT_RESOLVED = "orchestration.checkpoint.resolved"
    CHECKPOINT_EXPIRING = "orchestration.checkpoint.expiring"
    CHILD_STARTED = "orchestration.child.started"
    CHILD_COMPLETED = "orchestration.child.completed"
    CHILD_FAILED = "orchestration.child.failed"
    RECOVERY_ACTION = "orchestration.recovery.action"
    # a webhook endpoint was disabled (410 Gone, or failing too long) while delivering this run
    WEBHOOK_DISABLED = "orchestration.webhook.disabled"


TERMINAL_RUN_EVENTS = frozenset(
    {EventType.RUN_COMPLETED, EventType.RUN_FAILED, EventType.RUN_ABORTED}
)
