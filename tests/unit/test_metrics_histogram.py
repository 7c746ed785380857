"""The engine's histograms (step duration, queue time, run duration) as Prometheus reads
them: cumulative buckets whose ``le`` holds values equal to the bound, a count and a sum."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from podium.metrics import LabelledHistogram


def scrape(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_buckets_are_cumulative_and_a_bound_holds_its_own_value() -> None:
    registry = CollectorRegistry()
    h = LabelledHistogram("t_seconds", "test", ["definition", "step"], [0.1, 1, 10], registry)
    for value in (0.05, 0.1, 0.5, 1.0, 20.0):
        h.observe(("d", "s"), value)
    h.observe(("d", "other"), 3.0)
    samples = scrape(registry)

    def bucket(step: str, le: str) -> float:
        labels = (("definition", "d"), ("le", le), ("step", step))
        return samples[("t_seconds_bucket", labels)]

    assert [bucket("s", le) for le in ("0.1", "1.0", "10.0", "+Inf")] == [2, 4, 4, 5]
    assert [bucket("other", le) for le in ("0.1", "1.0", "10.0", "+Inf")] == [0, 0, 1, 1]
    assert samples[("t_seconds_count", (("definition", "d"), ("step", "s")))] == 5
    assert samples[("t_seconds_sum", (("definition", "d"), ("step", "s")))] == 21.65


def test_a_histogram_without_observations_still_declares_its_type() -> None:
    registry = CollectorRegistry()
    LabelledHistogram("empty_seconds", "nothing yet", ["definition"], [1], registry)
    text = generate_latest(registry).decode()
    assert "# TYPE empty_seconds histogram" in text
    assert "empty_seconds_count" not in text
