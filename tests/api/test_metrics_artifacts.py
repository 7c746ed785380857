"""The Grafana dashboard and the alert rules (issue 12) name only metrics that a real scrape
of a working Podium exports; ``promtool`` accepts the scrape and the rules where installed."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.api.helpers import Finisher, launch, push

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "podium.json"
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
METRIC = re.compile(r"\b((?:orchestration|podium)_[a-z_]+)\b")

DOC = """
metadata: {name: artifacts, version: 1.0.0}
orchestration:
  execution: {caching: {enabled: true}}
  steps:
    - {id: a, agent: echo, input: {text: x}}
"""


def dashboard_exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    assert doc["__inputs"][0]["name"] == "DS_PROMETHEUS"
    exprs = []
    for panel in doc["panels"]:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}"
        exprs += [t["expr"] for t in panel["targets"]]
    return exprs


def rule_exprs() -> list[str]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule["expr"] for group in doc["groups"] for rule in group["rules"]]


async def scrape(client: httpx.AsyncClient, acme: dict[str, str], finish: Finisher) -> str:
    await push(client, acme, DOC)
    for _ in range(2):  # a miss, then a hit
        run = await launch(client, acme, "artifacts")
        assert await finish(run["id"]) == "completed"
    return (await client.get("/metrics")).text


async def test_every_metric_of_the_dashboard_and_rules_is_in_a_real_scrape(
    client: httpx.AsyncClient, acme: dict[str, str], finish: Finisher
) -> None:
    text = await scrape(client, acme, finish)
    exported = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    named = {m for expr in dashboard_exprs() + rule_exprs() for m in METRIC.findall(expr)}
    assert len(named) >= 12
    missing = sorted(named - exported)
    assert missing == []
    panels = " ".join(dashboard_exprs())
    for topic in (
        "runs_total",
        "step_duration",
        "step_queue",
        "cache_requests",
        "in_flight",
        "approvals_pending",
        "agent_calls",
        "recoveries",
        "webhook_deliveries",
    ):
        assert topic in panels, topic


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *args], input=stdin, capture_output=True, text=True, check=False
    )


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
async def test_promtool_accepts_a_real_scrape_and_the_rules(
    client: httpx.AsyncClient, acme: dict[str, str], finish: Finisher
) -> None:
    text = await scrape(client, acme, finish)
    checked = await asyncio.to_thread(promtool, "check", "metrics", stdin=text)
    # exit 3 is a lint finding on style only; errors are exit 1
    assert checked.returncode in (0, 3), checked.stderr + checked.stdout
    assert "error" not in checked.stderr.lower(), checked.stderr
    rules = await asyncio.to_thread(promtool, "check", "rules", str(RULES))
    assert rules.returncode == 0, rules.stderr + rules.stdout
