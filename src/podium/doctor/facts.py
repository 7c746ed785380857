"""The read-only facade the checks see: the facts of one database, each read once.

It wraps a :class:`~podium.storage.store.SqlStore` but offers only queries, so a check
cannot change anything; the facts several checks share (active runs and their steps) are
read once per doctor run.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from podium.doctor.model import Options
from podium.storage import diagnostics as q
from podium.storage import diagnostics_cache as qc
from podium.storage.agents import AgentRecord
from podium.storage.keys import ApiKeyRecord
from podium.storage.records import WorkerRecord
from podium.storage.store import SqlStore

T = TypeVar("T")

FAILED_RUN_LIMIT = 1_000
QUEUE_SAMPLE_LIMIT = 5_000
LONG_STEP_LIMIT = 10_000
LONG_STEP_SCAN = 20_000  # newest completed steps looked at for heavy repeats
CACHE_SCAN = 20_000  # newest completed steps looked at for cache requests


class Facts:
    """Facts for one doctor run over ``options.organization`` (all when None)."""

    def __init__(self, store: SqlStore, options: Options) -> None:
        self._store = store
        self._options = options
        self.is_sqlite = store.is_sqlite

    def _read(self, fn: functools.partial[T]) -> T:
        result: T = self._store.diagnostics_read(fn)
        return result

    def read(self, fn: Callable[..., T], **arguments: Any) -> T:
        """One read-only query ``fn(conn, organization=..., **arguments)`` in the scope of
        this doctor run (its organization)."""
        return self._read(
            functools.partial(fn, organization=self._options.organization, **arguments)
        )

    @functools.cached_property
    def database_now(self) -> datetime | None:
        return self._read(functools.partial(q.database_now))

    @functools.cached_property
    def revisions(self) -> tuple[str | None, str | None]:
        """The schema's revision and the one this Podium needs."""
        status = self._store.schema_status()
        return status.current, status.head

    @functools.cached_property
    def sqlite_pragmas(self) -> dict[str, object]:
        return self._read(functools.partial(q.sqlite_pragmas))

    @functools.cached_property
    def active_runs(self) -> list[q.ActiveRun]:
        o = self._options
        return self._read(
            functools.partial(q.active_runs, organization=o.organization, run_id=o.run_id)
        )

    @functools.cached_property
    def stalled_runs(self) -> list[q.ActiveRun]:
        """Active runs with no event for longer than ``--stalled-after``."""
        cutoff = self._options.now - timedelta(seconds=self._options.stalled_after)
        return [r for r in self.active_runs if (r.last_event_at or r.created_at) < cutoff]

    @functools.cached_property
    def open_steps_of_stalled(self) -> dict[str, list[q.OpenStep]]:
        ids = [r.id for r in self.stalled_runs]
        by_run: dict[str, list[q.OpenStep]] = defaultdict(list)
        if ids:
            for step in self._read(functools.partial(q.open_steps, run_ids=ids)):
                by_run[step.run_id].append(step)
        return by_run

    @functools.cached_property
    def recoveries_in_flight(self) -> list[q.InFlight]:
        o = self._options
        return self._read(
            functools.partial(q.recoveries_in_flight, organization=o.organization, run_id=o.run_id)
        )

    @functools.cached_property
    def failed_steps_of_failed_runs(self) -> list[q.FailedStep]:
        o = self._options
        return self._read(
            functools.partial(
                q.failed_steps_of_failed_runs,
                organization=o.organization,
                run_id=o.run_id,
                limit=FAILED_RUN_LIMIT,
            )
        )

    def queue_seconds(self, since: datetime, until: datetime) -> list[float]:
        return self._read(
            functools.partial(
                q.queue_seconds,
                organization=self._options.organization,
                since=since,
                until=until,
                limit=QUEUE_SAMPLE_LIMIT,
            )
        )

    def long_steps_since(self, since: datetime, min_seconds: float) -> list[q.FinishedStep]:
        return self._read(
            functools.partial(
                q.long_steps_since,
                organization=self._options.organization,
                since=since,
                min_seconds=min_seconds,
                limit=LONG_STEP_LIMIT,
                scan=LONG_STEP_SCAN,
            )
        )

    def cache_requests(self, since: datetime) -> list[qc.CacheRequests]:
        """Completions with caching on since ``since``, counted by definition and step."""
        return self._read(
            functools.partial(
                qc.cache_requests,
                organization=self._options.organization,
                since=since,
                scan=CACHE_SCAN,
            )
        )

    def expired_cache_backlog(self, before: datetime) -> list[qc.ExpiredBacklog]:
        """Cache entries past ``expiresAt`` before ``before``, by organization."""
        return self._read(
            functools.partial(
                qc.expired_cache_backlog, organization=self._options.organization, before=before
            )
        )

    @functools.cached_property
    def active_definitions(self) -> list[q.ActiveDefinition]:
        return self._read(
            functools.partial(q.active_definitions, organization=self._options.organization)
        )

    def run_snapshot(self, run_id: str) -> dict[str, object] | None:
        return self._read(functools.partial(q.run_snapshot, run_id=run_id))

    @functools.cached_property
    def agents(self) -> list[AgentRecord]:
        """The organization's agents and ``global``'s (every organization's when None)."""
        return self._store.list_agents(self._options.organization)

    @functools.cached_property
    def routing_policy(self) -> dict[str, object] | None:
        return self._store.get_config("routing-policy")

    @functools.cached_property
    def workers(self) -> list[WorkerRecord]:
        """Workers not stopped whose heartbeat is within the lease."""
        since = self._options.now - timedelta(seconds=self._options.settings.lease_seconds)
        return self._store.list_workers(alive_since=since)

    @functools.cached_property
    def api_keys(self) -> list[ApiKeyRecord]:
        return self._store.list_keys()
