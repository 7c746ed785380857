"""The schema, in SQLAlchemy Core. Alembic migrations create it; a drift test keeps them equal.

Times are stored as UTC. JSON columns are JSONB on PostgreSQL and JSON text on SQLite.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

metadata = sa.MetaData()


class JsonDocument(sa.TypeDecorator[Any]):
    """``sa.JSON``, as JSONB on PostgreSQL. The PostgreSQL type is looked up when a
    PostgreSQL connection first needs it: importing the PostgreSQL dialect costs a process
    on SQLite about a tenth of ``podium runs list``'s start-up. Python ``None`` is stored as
    JSON ``null``, as ``sa.JSON`` stores it."""

    impl = sa.JSON
    cache_ok = True
    should_evaluate_none = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(sa.JSON())


JSON = JsonDocument()


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both databases (SQLite keeps no zone of its own)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Timestamp = UTCDateTime

definitions = sa.Table(
    "orchestration_definitions",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("organization_slug", sa.String(100), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    # zero-padded MAJOR.MINOR.PATCH so that "latest active" is an ORDER BY
    sa.Column("version_key", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("display_name", sa.String(200)),
    sa.Column("description", sa.Text),
    sa.Column("document", JSON, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.UniqueConstraint("organization_slug", "name", "version", name="uq_definitions_version"),
    sa.Index("ix_definitions_name_status", "organization_slug", "name", "status", "version_key"),
)

runs = sa.Table(
    "orchestration_runs",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("organization_slug", sa.String(100), nullable=False),
    sa.Column("definition_name", sa.String(200), nullable=False),
    sa.Column("definition_version", sa.String(64), nullable=False),
    # the definition document as launched: the run follows it whatever happens later (D7)
    sa.Column("snapshot", JSON, nullable=False),
    sa.Column("parameters", JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("max_parallel_steps", sa.Integer, nullable=False),
    sa.Column("outputs", JSON),
    sa.Column("error", JSON),
    sa.Column("metadata", JSON, nullable=False),
    sa.Column("parent_run_id", sa.String(36)),
    sa.Column("parent_step_record_id", sa.String(36)),
    # the last event sequence written for this run; events take the next numbers, so the
    # per-run log has no gaps, and updating it serialises writers of one run
    sa.Column("last_sequence", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("started_at", Timestamp),
    sa.Column("ended_at", Timestamp),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("deadline_at", Timestamp),
    # the operator action whose effect is still in flight (its step has not settled yet);
    # another action on the run is refused until it clears (spec section 8)
    sa.Column("recovery_in_flight", JSON),
    # child runs (migration 0008): the run at the top of the tree (a root names itself),
    # how deep below it this run is, and the attempt of the parent step that created it
    sa.Column("root_run_id", sa.String(36)),
    sa.Column("depth", sa.Integer, nullable=False, server_default="0"),
    sa.Column("parent_generation", sa.Integer),
    sa.Column("parent_attempt", sa.Integer),
    sa.Index("ix_runs_status", "status", "created_at"),
    sa.Index("ix_runs_org_created", "organization_slug", "created_at"),
    # the runs list (newest first, keyset on id) of one organization, with or without a
    # status filter, and a run's children: read in index order, never sorted (migration
    # 0009; without ``id`` in ix_runs_parent, SQLite would list children by ix_runs_org_id)
    sa.Index("ix_runs_org_id", "organization_slug", "id"),
    sa.Index("ix_runs_org_status_id", "organization_slug", "status", "id"),
    sa.Index("ix_runs_parent", "parent_run_id", "id"),
    sa.Index("ix_runs_root", "root_run_id"),
    # one child per attempt of a parent step, whatever crashes (S2)
    sa.Index(
        "uq_runs_parent_step_attempt",
        "parent_step_record_id",
        "parent_generation",
        "parent_attempt",
        unique=True,
    ),
)

steps = sa.Table(
    "orchestration_steps",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),  # stepRecordId
    sa.Column("run_id", sa.String(36), sa.ForeignKey("orchestration_runs.id"), nullable=False),
    sa.Column("step_id", sa.String(100), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("agent", sa.String(200)),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("input", JSON),
    sa.Column("output", JSON),
    sa.Column("error", JSON),
    # retry attempt number (1-based); a crash recovery does not consume an attempt
    sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),
    # changes on an operator retry; part of the idempotency key
    sa.Column("generation", sa.Integer, nullable=False, server_default="1"),
    sa.Column("recoveries", sa.Integer, nullable=False, server_default="0"),
    # dependencies not yet completed or skipped; the step is queued when it reaches zero
    sa.Column("deps_remaining", sa.Integer, nullable=False, server_default="0"),
    # fencing token: increases on every claim; a completion must present the current one
    sa.Column("claim_token", sa.Integer, nullable=False, server_default="0"),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_expires_at", Timestamp),
    # a pending step waiting for its retry time (metadata.runtime.retry.nextRetryAt)
    sa.Column("available_at", Timestamp),
    sa.Column("queued_at", Timestamp),
    sa.Column("started_at", Timestamp),
    sa.Column("ended_at", Timestamp),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("metadata", JSON, nullable=False),
    sa.UniqueConstraint("run_id", "step_id", name="uq_steps_run_step"),
    sa.Index("ix_steps_run_status", "run_id", "status"),
    sa.Index("ix_steps_claimable", "status", "queued_at", "position"),
    sa.Index("ix_steps_lease", "status", "lease_expires_at"),
    sa.Index("ix_steps_retry", "status", "available_at"),
)

events = sa.Table(
    "orchestration_events",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("run_id", sa.String(36), nullable=False),
    sa.Column("sequence", sa.Integer, nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("organization_slug", sa.String(100), nullable=False),
    sa.Column("timestamp", Timestamp, nullable=False),
    sa.Column("step_id", sa.String(100)),
    sa.Column("step_record_id", sa.String(36)),
    sa.Column("data", JSON, nullable=False),
    sa.UniqueConstraint("run_id", "sequence", name="uq_events_run_sequence"),
)

approvals = sa.Table(
    "human_approvals",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),  # approvalId
    sa.Column("organization_slug", sa.String(100), nullable=False),
    sa.Column("run_id", sa.String(36), nullable=False),
    sa.Column("step_record_id", sa.String(36), nullable=False),
    sa.Column("conversation_id", sa.String(100), nullable=False),
    sa.Column("question", sa.Text, nullable=False),
    sa.Column("options", JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("decision", sa.String(16)),
    sa.Column("decided_by", sa.String(200)),
    sa.Column("decided_at", Timestamp),
    sa.Column("note", sa.Text),
    sa.Column("on_timeout", sa.String(16), nullable=False),
    sa.Column("expires_at", Timestamp),
    sa.Column("created_at", Timestamp, nullable=False),
    # migration 0007 (human checkpoints): what the reviewer sees and what was decided
    sa.Column("kind", sa.String(16), nullable=False, server_default="checkpoint"),
    sa.Column("step_id", sa.String(100)),
    sa.Column("definition_name", sa.String(200)),
    sa.Column("step_output", JSON),
    # kind input: the agent's question (a2a taskId/contextId, message, state)
    sa.Column("details", JSON),
    sa.Column("modifications", JSON),
    sa.Column("response", JSON),
    # 80 % of the way to expires_at: orchestration.checkpoint.expiring is emitted once
    sa.Column("expiring_at", Timestamp),
    sa.Column("expiring_notified", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("ix_approvals_org_status", "organization_slug", "status"),
    sa.Index("ix_approvals_run", "run_id"),
    sa.Index("ix_approvals_inbox", "organization_slug", "status", "created_at", "id"),
    sa.Index("ix_approvals_expiry", "status", "expires_at"),
    sa.Index("ix_approvals_expiring", "status", "expiring_notified", "expiring_at"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    # the public part of the key (pod_<id>_<secret>): finds the row without the secret
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("organization_slug", sa.String(100), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    # SHA-256 of the whole key; the key itself is shown once and never stored
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("last_used_at", Timestamp),
    sa.Column("revoked_at", Timestamp),
    sa.Index("ix_api_keys_org", "organization_slug"),
)

idempotency_records = sa.Table(
    "idempotency_records",
    metadata,
    sa.Column("organization_slug", sa.String(100), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    # SHA-256 of the canonical request body: the same key with another body is refused
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(36), nullable=False),
    sa.Column("status_code", sa.Integer, nullable=False),
    sa.Column("response", JSON, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
)

agents = sa.Table(
    "agents",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("organization_slug", sa.String(100), nullable=False),
    sa.Column("slug", sa.String(100), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # a2a | python
    sa.Column("url", sa.Text),  # a2a: the agent's base URL
    sa.Column("target", sa.String(300)),  # python: module:function
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("concurrency_limit", sa.Integer),
    sa.Column("timeout_seconds", sa.Float),
    # the cached Agent Card (name, version, skills, capabilities, protocol version)
    sa.Column("card", JSON),
    sa.Column("card_fetched_at", Timestamp),
    sa.Column("last_success_at", Timestamp),
    sa.Column("last_error", JSON),
    sa.Column("last_error_at", Timestamp),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.UniqueConstraint("organization_slug", "slug", name="uq_agents_org_slug"),
)

config_documents = sa.Table(
    "config_documents",
    metadata,
    # named configuration documents edited through the API, e.g. "routing-policy"
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("document", JSON, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("updated_by", sa.String(200)),
)

workers = sa.Table(
    "orchestration_workers",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("hostname", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("concurrency", sa.Integer, nullable=False),
    sa.Column("started_at", Timestamp, nullable=False),
    sa.Column("heartbeat_at", Timestamp, nullable=False),
    sa.Column("stopped_at", Timestamp),
    # the Podium release the worker runs (migration 0009; null: a worker started before it)
    sa.Column("version", sa.String(64)),
)

cache_entries = sa.Table(
    "orchestration_cache_entries",
    metadata,
    # the step cache (spec section 9): one entry per organization and fingerprint
    sa.Column("organization_slug", sa.String(100), primary_key=True),
    sa.Column("fingerprint", sa.String(64), primary_key=True),
    sa.Column("definition_name", sa.String(200), nullable=False),
    sa.Column("step_id", sa.String(100), nullable=False),
    sa.Column("agent", sa.String(200), nullable=False),
    sa.Column("output", JSON),
    sa.Column("stored_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp),  # None: no expiry
    sa.Column("hits", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_hit_at", Timestamp),
    sa.Column("source_run_id", sa.String(36), nullable=False),
    sa.Column("source_step_record_id", sa.String(36), nullable=False),
    sa.Index("ix_cache_entries_step", "organization_slug", "definition_name", "step_id"),
    sa.Index("ix_cache_entries_expires", "expires_at"),
)

cache_flights = sa.Table(
    "orchestration_cache_flights",
    metadata,
    # single flight: the step record computing a fingerprint, until its lease expires
    sa.Column("organization_slug", sa.String(100), primary_key=True),
    sa.Column("fingerprint", sa.String(64), primary_key=True),
    sa.Column("owner_step_record_id", sa.String(36), nullable=False),
    sa.Column("lease_expires_at", Timestamp, nullable=False),
)

# the metrics' approvals gauge counts pending approvals of every organization at scrape time
sa.Index("ix_approvals_status", approvals.c.status)
webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    # "*" is the global endpoint (ORCHESTRATION_PROGRESS_WEBHOOK_URL): every organization
    sa.Column("organization_slug", sa.String(100), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("description", sa.Text),
    # exact event names and prefixes ("orchestration.run.*"); empty: every event
    sa.Column("event_types", JSON, nullable=False),
    # definition names; null: every definition
    sa.Column("definitions", JSON),
    sa.Column("secret", sa.String(200), nullable=False),
    # the secret before the last rotation: it still signs until previous_secret_expires_at
    sa.Column("previous_secret", sa.String(200)),
    sa.Column("previous_secret_expires_at", Timestamp),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("disabled_reason", sa.Text),
    sa.Column("rate_limit", sa.Integer),  # requests per second; null: unlimited
    sa.Column("max_in_flight", sa.Integer, nullable=False, server_default="8"),
    # start of the current run of failed attempts (cleared by a success)
    sa.Column("failing_since", Timestamp),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Index("ix_webhook_endpoints_org", "organization_slug"),
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("endpoint_id", sa.String(36), nullable=False),
    sa.Column("organization_slug", sa.String(100), nullable=False),
    sa.Column("run_id", sa.String(36), nullable=False),
    sa.Column("sequence", sa.Integer, nullable=False),
    sa.Column("event_id", sa.String(36), nullable=False),  # the webhook-id header
    sa.Column("event_type", sa.String(64), nullable=False),
    # pending | delivering | delivered | failed (retries remain) | dead
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", Timestamp, nullable=False),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_expires_at", Timestamp),
    sa.Column("last_status_code", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("last_response_body", sa.Text),  # the first 1 KB
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("delivered_at", Timestamp),
    sa.UniqueConstraint("endpoint_id", "run_id", "sequence", name="uq_webhook_deliveries_order"),
    sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    # dead letters only (the bulk replay by endpoint and time): every delivery the engine
    # writes would cost each step's transaction one more page (migration 0011); partial, see
    # PARTIAL_INDEXES
    sa.Index("ix_webhook_deliveries_dead", "endpoint_id", "created_at"),
)

stream_tickets = sa.Table(
    "stream_tickets",
    metadata,
    # SHA-256 of the ticket; the ticket itself is returned once and never stored
    sa.Column("ticket_hash", sa.String(64), primary_key=True),
    sa.Column("organization_slug", sa.String(100), nullable=False),
    sa.Column("key_id", sa.String(32)),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("actor_name", sa.String(200), nullable=False),
    sa.Column("run_id", sa.String(36), nullable=False),
    sa.Column("expires_at", Timestamp, nullable=False),
    sa.Column("used_at", Timestamp),
    sa.Column("created_at", Timestamp, nullable=False),
)

# Partial indexes, by name: the rows they hold, in the same SQL on SQLite and PostgreSQL.
# The clause reaches a dialect when an engine of it is made (with_dialect_options), not in
# the Index itself: naming postgresql_where there makes SQLAlchemy import the whole
# PostgreSQL dialect to check the name, in every process (about a tenth of `podium runs
# list` on SQLite).
PARTIAL_INDEXES = {"ix_webhook_deliveries_dead": "status = 'dead'"}


def with_dialect_options(dialect: str) -> None:
    """Give ``dialect`` (``sqlite`` or ``postgresql``, whose module is loaded by then) the
    ``WHERE`` of each partial index; calling it again changes nothing."""
    for table in metadata.tables.values():
        for index in table.indexes:
            where = PARTIAL_INDEXES.get(str(index.name))
            if where is not None:
                index.dialect_kwargs[f"{dialect}_where"] = sa.text(where)
