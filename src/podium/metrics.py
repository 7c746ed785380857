"""Every Prometheus metric of Podium, in one place (spec section 12).

Two kinds, because a deployment is several API and worker processes:

- Counters and histograms of work done live in the process that did the work (the worker
  that ran the step, the process that committed the run's end) and are summed by Prometheus
  over every scraped instance (``podium worker --metrics-port``, ``podium serve``).
- State gauges (runs active, steps in flight, queue depth, approvals pending, dead letters)
  are not kept in memory at all: :class:`StateCollector` reads them from the database at
  scrape time (cached for ``ttl`` seconds), so every instance answers the same and a killed
  process leaves nothing stale behind. Aggregate them with ``max``, not ``sum``.

Labels come only from definitions, steps, agents, statuses and outcomes, never from run ids or
URLs; the distinct ``definition``, ``step`` and ``agent`` values one process reports are
capped (``PODIUM_METRICS_MAX_SERIES``), later ones are reported as ``other``.
"""

from __future__ import annotations

import logging
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import generate_latest, start_http_server
from prometheus_client.registry import Collector

from podium import __version__
from podium.storage import observe
from podium.storage.gauges import StateCounts

log = logging.getLogger(__name__)

OTHER = "other"
DEFAULT_MAX_SERIES = 1000
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
_RUN_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 300, 600, 1800, 3600, 7200, 21600, 86400)


class LabelCap:
    """At most ``limit`` distinct values per label kind; the rest become ``other``."""

    def __init__(self, limit: int = DEFAULT_MAX_SERIES) -> None:
        self.limit = limit
        self._seen: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def __call__(self, kind: str, value: str) -> str:
        seen = self._seen.get(kind)
        if seen is not None and value in seen:  # the usual answer, without the lock
            return value
        with self._lock:
            seen = self._seen.setdefault(kind, set())
            if value in seen:
                return value
            if len(seen) >= self.limit:
                return OTHER
            seen.add(value)
            return value


cap = LabelCap()


def configure(max_series: int) -> None:
    """Set the cap on distinct label values (``PODIUM_METRICS_MAX_SERIES``)."""
    cap.limit = max_series


BUILD_INFO = Gauge("podium_build_info", "Podium version of this process.", ["version"])
BUILD_INFO.labels(version=__version__).set(1)

RUNS = Counter(
    "orchestration_runs",
    "Runs that reached a terminal status, by definition and status.",
    ["definition", "status"],
)


def _le(bound: float) -> str:
    """A bucket bound as prometheus_client writes it (``1.0``, ``0.25``, ``3600.0``)."""
    return repr(float(bound))


class LabelledHistogram(Collector):
    """A histogram family whose label values are learnt as work happens (one series per
    definition and step), exported with prometheus_client's ``HistogramMetricFamily``.

    Why not ``prometheus_client.Histogram``: its first observation for new label values
    builds a child of one lock and one value per bucket (about 90 µs), and every later one
    takes about 10 µs. This runs on the engine's path twice per step attempt, where it cost
    most of a chain step's budget; here an observation is a dict lookup, a bisection and two
    additions under one lock (about 1 µs), and the buckets are summed only when scraped.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.bounds = tuple(float(b) for b in buckets)
        self._les = (*(_le(b) for b in self.bounds), "+Inf")
        # label values -> [count per bucket ..., count above the last bound, sum]
        self._series: dict[tuple[str, ...], list[float]] = {}
        self._lock = threading.Lock()
        if registry is not None:
            registry.register(self)

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        """Count ``value`` (seconds) under ``labels`` (in the order of ``labelnames``)."""
        index = bisect_left(self.bounds, value)  # the first bucket whose ``le`` holds it
        with self._lock:
            series = self._series.get(labels)
            if series is None:
                series = self._series[labels] = [0.0] * (len(self.bounds) + 2)
            series[index] += 1
            series[-1] += value

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            snapshot = [(labels, list(series)) for labels, series in self._series.items()]
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, series in snapshot:
            cumulative: list[tuple[str, float]] = []
            running = 0.0
            for le, count in zip(self._les, series[:-1], strict=True):
                running += count
                cumulative.append((le, running))
            family.add_metric(list(labels), cumulative, sum_value=series[-1])
        return [family]

    def describe(self) -> Iterable[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]


RUN_DURATION = LabelledHistogram(
    "orchestration_run_duration_seconds",
    "Time from a run's creation to its terminal status.",
    ["definition", "status"],
    buckets=_RUN_BUCKETS,
)
STEP_DURATION = LabelledHistogram(
    "orchestration_step_duration_seconds",
    "Time of one step attempt, from claim to recorded outcome (completed, failed, retry).",
    ["definition", "step", "status"],
    buckets=_DURATION_BUCKETS,
)
STEP_QUEUE = LabelledHistogram(
    "orchestration_step_queue_seconds",
    "Time a step waited from queued to running.",
    ["definition", "step"],
    buckets=_DURATION_BUCKETS,
)
CACHE_REQUESTS = Counter(
    "orchestration_cache_requests",
    "Step cache lookups by result (hit, miss, expired).",
    ["result"],
)
AGENT_CALLS = Counter(
    "orchestration_agent_calls",
    "Agent calls by agent slug and outcome (success or the error code).",
    ["agent", "outcome"],
)
RECOVERIES = Counter(
    "orchestration_recoveries",
    "Recoveries: leases expired (lease_expired, worker_lost) and operator actions.",
    ["reason"],
)
WEBHOOK_DELIVERIES = Counter(
    "orchestration_webhook_deliveries",
    "Webhook delivery attempts by outcome.",
    ["outcome"],
)

# every known label value exported from the start (at 0), so that rates and alerts see them
for _result in ("hit", "miss", "expired"):
    CACHE_REQUESTS.labels(result=_result)
for _reason in ("lease_expired", "worker_lost", "retry", "skip", "abort"):
    RECOVERIES.labels(reason=_reason)
for _outcome in ("delivered", "failed", "dead_lettered"):
    # TODO(webhooks): the webhook sender calls webhook_delivery(outcome) per attempt
    WEBHOOK_DELIVERIES.labels(outcome=_outcome)


def cache_request(result: str, definition: str = "", step: str = "") -> None:
    """Count one step cache lookup (``hit``, ``miss`` or ``expired``)."""
    CACHE_REQUESTS.labels(result=result).inc()


_agent_calls: dict[tuple[str, str], Any] = {}


def agent_call(agent: str, outcome: str) -> None:
    # the counter's child per (agent, outcome), found again without ``labels()``'s checks
    child = _agent_calls.get((agent, outcome))
    if child is None:
        child = AGENT_CALLS.labels(agent=cap("agent", agent), outcome=outcome)
        if len(_agent_calls) < 4 * cap.limit:  # slugs past the cap share ``other``: bounded
            _agent_calls[(agent, outcome)] = child
    child.inc()


class AgentCallCounter:
    """An attempt observer (:class:`~podium.engine.attempt.AttemptObserver`) that counts the
    calls made to agents by outcome: attempts of the ``agent`` kind that reached their agent
    (not cache hits, not input failures)."""

    def attempt_finished(self, step: Any, kind: str, outcome: Any, seconds: float) -> None:
        if kind != "agent" or getattr(outcome.cache, "hit", None) is not None:
            return
        from podium.engine.executor import operator_overrides

        spec = step.definition.step(step.step_id)
        slug = operator_overrides(step).get("agent", spec.agent or "")
        error = outcome.error
        agent_call(slug, "success" if error is None else str(error.code))


def step_queued(definition: str, step: str, seconds: float) -> None:
    d, s = cap("definition", definition), cap("step", step)
    STEP_QUEUE.observe((d, s), max(seconds, 0.0))


def step_finished(definition: str, step: str, status: str, seconds: float) -> None:
    d, s = cap("definition", definition), cap("step", step)
    STEP_DURATION.observe((d, s, status), max(seconds, 0.0))


def run_ended(definition: str, status: str, seconds: float) -> None:
    d = cap("definition", definition)
    RUNS.labels(definition=d, status=status).inc()
    RUN_DURATION.observe((d, status), max(seconds, 0.0))


def recovery(reason: str) -> None:
    RECOVERIES.labels(reason=reason).inc()


def webhook_delivery(outcome: str) -> None:
    """For the webhook sender: count one delivery attempt by outcome."""
    WEBHOOK_DELIVERIES.labels(outcome=outcome).inc()


def _on_committed(items: Sequence[object]) -> None:
    for item in items:
        if isinstance(item, observe.RunEnded):
            run_ended(item.definition, item.status, item.seconds)


observe.add_observer(_on_committed)


class StateCollector(Collector):
    """State gauges read from the database at scrape time, cached for ``ttl`` seconds."""

    def __init__(self, read: Callable[[], StateCounts], *, ttl: float = 2.0) -> None:
        self._read = read
        self.ttl = ttl
        self._cached: tuple[float, list[Metric]] | None = None
        self._lock = threading.Lock()

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= self.ttl:
                self._cached = (now, self._families(self._read()))
            return list(self._cached[1])

    def describe(self) -> Iterable[Metric]:
        return []  # values need the database: do not read it at registration

    @staticmethod
    def _families(state: StateCounts) -> list[Metric]:
        active = GaugeMetricFamily(
            "orchestration_runs_active", "Runs not yet ended, by status.", labels=["status"]
        )
        for status, count in sorted(state.runs_active.items()):
            active.add_metric([status], count)
        families: list[Metric] = [active]
        for name, doc, value in (
            ("orchestration_steps_in_flight", "Steps running under a live lease.", state.in_flight),
            ("orchestration_steps_queued", "Steps queued, waiting for a worker.", state.queued),
            (
                "orchestration_step_queue_oldest_seconds",
                "Age of the oldest queued step (0 when none is queued).",
                state.oldest_queued_seconds,
            ),
            (
                "orchestration_runs_stalled",
                "Running runs without any change for 15 minutes.",
                state.stalled_runs,
            ),
            ("orchestration_approvals_pending", "Pending human approvals.", state.approvals),
            (
                "orchestration_webhook_dead_letters",
                "Webhook deliveries in the dead-letter queue.",
                state.dead_letters,
            ),
            ("orchestration_workers_alive", "Workers with a recent heartbeat.", state.workers),
        ):
            families.append(GaugeMetricFamily(name, doc, value=value))
        return families


class _Forward(Collector):
    """Everything of the process-wide registry (counters, process and Python collectors)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        return self.registry.collect()


def registry_for(
    read_state: Callable[[], StateCounts] | None = None, *, ttl: float = 2.0
) -> CollectorRegistry:
    """This process's metrics plus (with ``read_state``) the state gauges, read at most
    every ``ttl`` seconds."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Forward(REGISTRY))
    if read_state is not None:
        registry.register(StateCollector(read_state, ttl=ttl))
    return registry


def exposition(
    read_state: Callable[[], StateCounts] | None = None, *, ttl: float = 2.0
) -> Callable[[], bytes]:
    """A function rendering :func:`registry_for` in Prometheus text format."""
    registry = registry_for(read_state, ttl=ttl)

    def render() -> bytes:
        return generate_latest(registry)

    return render


def serve(
    port: int, host: str, read_state: Callable[[], StateCounts] | None = None
) -> Callable[[], None]:
    """Serve ``/metrics`` on ``host:port`` from a background thread (``podium worker
    --metrics-port``); returns the function that stops it. Port 0 picks a free port, which
    the returned function's ``port`` attribute names."""
    server, thread = start_http_server(port, addr=host, registry=registry_for(read_state))

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    stop.port = server.server_port  # type: ignore[attr-defined]
    return stop
