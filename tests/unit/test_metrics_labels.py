"""Bounded metric labels (issue 12): ``PODIUM_METRICS_MAX_SERIES`` caps distinct values."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from podium import metrics


@pytest.fixture
def fresh_cap() -> Iterator[metrics.LabelCap]:
    saved = metrics.cap
    metrics.cap = metrics.LabelCap(limit=100)
    try:
        yield metrics.cap
    finally:
        metrics.cap = saved


def test_ten_thousand_definition_names_stay_under_the_cap(fresh_cap: metrics.LabelCap) -> None:
    for i in range(10_000):
        metrics.run_ended(f"def-{i:05d}", "completed", 1.0)
    text = metrics.exposition()().decode()
    definitions = {
        s.labels["definition"]
        for f in text_string_to_metric_families(text)
        if f.name == "orchestration_runs"
        for s in f.samples
        if s.labels["definition"].startswith("def-") or s.labels["definition"] == "other"
    }
    assert len(definitions) == 101  # 100 named, then "other"
    assert "other" in definitions
    other = [
        s.value
        for f in text_string_to_metric_families(text)
        if f.name == "orchestration_runs"
        for s in f.samples
        if s.labels == {"definition": "other", "status": "completed"}
    ]
    assert other[0] >= 9_900  # nothing was lost: the rest was counted as other


def test_a_value_seen_before_the_cap_keeps_its_name(fresh_cap: metrics.LabelCap) -> None:
    assert fresh_cap("step", "first") == "first"
    for i in range(200):
        fresh_cap("step", f"s{i}")
    assert fresh_cap("step", "first") == "first"
    assert fresh_cap("step", "new") == metrics.OTHER
    assert fresh_cap("definition", "new") == "new"  # each label kind has its own cap
