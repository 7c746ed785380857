"""The demo A2A agents behind ``podium agents demo``: served offline on loopback, each with
its own card, and ``serve_demo`` as the command runs it."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from podium.agents.a2a.card import fetch_card
from podium.agents.a2a.client import A2AAgent
from podium.agents.a2a.demo import demo_server
from podium.agents.a2a.hosting import AgentServer
from podium.agents.base import AgentError
from tests.agents.conftest import FakeStep

ROOT = Path(__file__).resolve().parents[2]
TEXT = "Podium runs agents durably. Workers may crash! Runs go on. Agents run again and again."


@pytest.fixture(scope="module")
def demo() -> Iterator[AgentServer]:
    with demo_server(port=0) as server:
        yield server


async def call(demo: AgentServer, slug: str, input: Any, step: FakeStep | None = None) -> Any:
    agent = A2AAgent(slug, demo.url(slug), poll_interval=0.02)
    return await agent.invoke(input, (step or FakeStep()).context())


async def test_every_demo_agent_has_its_own_card(demo: AgentServer) -> None:
    assert set(demo.urls) == {"summarizer", "keywords", "translator", "slow", "unreliable", "asker"}
    for slug, url in demo.urls.items():
        card = await fetch_card(url)
        assert card["name"] == slug
        assert card["url"] == url + "/"
        assert card["protocolVersion"] == ("0.3.0" if slug == "translator" else "1.0")


async def test_summarizer_keeps_the_first_sentences(demo: AgentServer) -> None:
    result = await call(demo, "summarizer", {"text": TEXT, "sentences": 2})
    assert result["output"]["text"] == "Podium runs agents durably. Workers may crash!"
    assert result["output"]["data"]["of"] == 4
    assert result["message"] == "kept 2 of 4 sentences"


async def test_keywords_are_the_most_frequent_words(demo: AgentServer) -> None:
    result = await call(demo, "keywords", {"userMessage": TEXT, "count": 2})
    assert result["output"]["data"] == {"keywords": ["runs", "agents"]}


async def test_translator_speaks_a2a_v03(demo: AgentServer) -> None:
    result = await call(demo, "translator", {"text": "bonjour"})
    assert result["output"] == {"text": "BONJOUR", "data": {"language": "upper-case"}}


async def test_slow_streams_progress_then_completes(demo: AgentServer) -> None:
    reports: list[str] = []

    async def progress(context: Any, report: dict[str, Any]) -> None:
        if report["message"]:
            reports.append(report["message"])

    agent = A2AAgent("slow", demo.url("slow"), on_progress=progress)
    result = await agent.invoke({"seconds": 0.3, "interval": 0.1}, FakeStep().context())
    assert result["output"]["data"] == {"slept": 0.3}
    assert len(reports) >= 2
    assert reports[-1] == "0.3 of 0.3 s"


async def test_flaky_fails_the_first_attempt_of_a_step_then_succeeds(demo: AgentServer) -> None:
    step = FakeStep()
    with pytest.raises(AgentError) as first:
        await call(demo, "unreliable", {"text": "x"}, step)
    assert (first.value.code, first.value.retryable) == ("agent_execution_error", True)
    second = await A2AAgent("unreliable", demo.url("unreliable")).invoke(
        {"text": "x"}, step.context(attempt=2)
    )
    assert second["output"]["data"] == {"messages": 2}
    assert (await call(demo, "unreliable", {"failTimes": 0}))["success"] is True


async def test_asker_asks_unless_answered(demo: AgentServer) -> None:
    with pytest.raises(AgentError) as asked:
        await call(demo, "asker", {"text": "q"})
    assert asked.value.code == "agent_input_required"
    assert asked.value.details["agentMessage"] == "Which language should the answer be in?"
    answered = await call(demo, "asker", {"text": "q", "answer": "French"})
    assert answered["output"]["text"] == "answering in French"


def test_serve_demo_prints_the_agent_urls_and_stops_on_sigterm() -> None:
    """What ``podium agents demo`` does: serve until interrupted, printing the URLs."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "from podium.agents.a2a.demo import serve_demo; serve_demo(port=0)"],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        printed: queue.Queue[str] = queue.Queue()
        stdout = proc.stdout

        def pump() -> None:
            for line in stdout:
                printed.put(line)

        threading.Thread(target=pump, daemon=True).start()
        lines: list[str] = []
        deadline = time.monotonic() + 20
        while len(lines) < 6:
            left = deadline - time.monotonic()
            assert left > 0, f"URLs not printed: {lines}"
            try:
                lines.append(printed.get(timeout=left))
            except queue.Empty:
                continue
        urls = dict(line.split() for line in lines)
        assert list(urls) == ["summarizer", "keywords", "translator", "slow", "unreliable", "asker"]
        assert all(u.startswith("http://127.0.0.1:") for u in urls.values())
        card = httpx.get(urls["keywords"] + "/.well-known/agent-card.json", timeout=5).json()
        assert card["name"] == "keywords"
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=15)
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()
    assert code in (0, -signal.SIGTERM)
