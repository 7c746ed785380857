"""Demo A2A agents, served on loopback with the ``a2a-sdk`` server (no network beyond it, no
model): what ``podium agents demo`` runs.

=============  =====  =========  ==============================================================
agent          A2A    streaming  does
=============  =====  =========  ==============================================================
summarizer     1.0    no         keeps the first ``sentences`` (default 2) sentences of the text
keywords       1.0    no         the ``count`` (default 5) most frequent words of the text
translator     0.3    yes        "translates" the text to upper case
slow           1.0    yes        reports progress every ``interval`` s (default 1) and completes
                                 after ``seconds`` (default 5); honours cancellation
unreliable     1.0    no         fails the first ``failTimes`` (default 1) messages of each
                                 idempotency key, then succeeds
asker          1.0    yes        asks a question (``INPUT_REQUIRED``) unless ``answer`` is given
=============  =====  =========  ==============================================================

Options (``sentences``, ``count``, ...) come from the data part of the message, that is from
the step's input object; the text from its text part (``input.text`` or ``input.userMessage``).
Every agent lives under its own path of one server: with the defaults,
``http://127.0.0.1:9700/<agent>`` (card at ``.../<agent>/.well-known/agent-card.json``).
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable

from a2a.helpers import new_data_part, new_text_part
from a2a.types import AgentSkill, TaskState

from podium.agents.a2a.hosting import AgentServer, HostedAgent, Incoming, TaskExecutor, Updater

DEMO_HOST = "127.0.0.1"
DEMO_PORT = 9700

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]+")
# words too common to be keywords
_STOPWORDS = frozenset(
    _WORD.findall(
        "a an and are as at be been but by for from has have he her his in is it its of on or "
        "our she so that the their them then there these they this to was we were what when "
        "which who will with you your not no can into than also"
    )
)


def _number(data: dict[str, object], key: str, default: float) -> float:
    value = data.get(key, default)
    return float(value) if isinstance(value, int | float) else default


class Summarizer(TaskExecutor):
    async def work(self, incoming: Incoming, updater: Updater) -> None:
        sentences = [s for s in _SENTENCE.split(incoming.text.strip()) if s]
        keep = max(int(_number(incoming.data, "sentences", 2)), 1)
        summary = " ".join(sentences[:keep])
        data = {"summary": summary, "sentences": min(keep, len(sentences)), "of": len(sentences)}
        await updater.add_artifact([new_text_part(summary), new_data_part(data)], name="summary")
        await updater.complete(
            updater.new_agent_message(
                [new_text_part(f"kept {data['sentences']} of {len(sentences)} sentences")]
            )
        )


class Keywords(TaskExecutor):
    async def work(self, incoming: Incoming, updater: Updater) -> None:
        words = [w.lower() for w in _WORD.findall(incoming.text)]
        counts = Counter(w for w in words if w not in _STOPWORDS)
        top = [w for w, _ in counts.most_common(max(int(_number(incoming.data, "count", 5)), 1))]
        await updater.add_artifact(
            [new_text_part(", ".join(top)), new_data_part({"keywords": top})], name="keywords"
        )


class Translator(TaskExecutor):
    async def work(self, incoming: Incoming, updater: Updater) -> None:
        translation = incoming.text.upper()
        await updater.add_artifact(
            [new_text_part(translation), new_data_part({"language": "upper-case"})],
            name="translation",
        )


class Slow(TaskExecutor):
    async def work(self, incoming: Incoming, updater: Updater) -> None:
        seconds = max(_number(incoming.data, "seconds", 5.0), 0.0)
        interval = max(_number(incoming.data, "interval", 1.0), 0.01)
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while (left := end - loop.time()) > 0:
            await asyncio.sleep(min(interval, left))
            done = min(seconds - max(end - loop.time(), 0.0), seconds)
            await updater.update_status(
                TaskState.TASK_STATE_WORKING,
                updater.new_agent_message([new_text_part(f"{done:.1f} of {seconds:g} s")]),
            )
        await updater.add_artifact([new_data_part({"slept": seconds})], name="result")
        await updater.complete(updater.new_agent_message([new_text_part(f"slept {seconds:g} s")]))


class Flaky(TaskExecutor):
    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()

    async def work(self, incoming: Incoming, updater: Updater) -> None:
        self.seen[incoming.key] += 1
        times = self.seen[incoming.key]
        if times <= int(_number(incoming.data, "failTimes", 1)):
            await updater.failed(
                updater.new_agent_message([new_text_part(f"flaky fails message {times}")])
            )
            return
        await updater.add_artifact(
            [new_text_part(f"succeeded at message {times}"), new_data_part({"messages": times})],
            name="result",
        )


class Asker(TaskExecutor):
    def __init__(self) -> None:
        # tasks that asked: a later message on one of them is the answer (its text)
        self.asked: set[str] = set()

    async def work(self, incoming: Incoming, updater: Updater) -> None:
        answer = incoming.data.get("answer")
        if not answer and incoming.task_id in self.asked:
            answer = incoming.text
        if not isinstance(answer, str) or not answer:
            self.asked.add(incoming.task_id)
            await updater.requires_input(
                updater.new_agent_message(
                    [new_text_part("Which language should the answer be in?")]
                )
            )
            return
        await updater.add_artifact([new_text_part(f"answering in {answer}")], name="answer")


def _skill(id: str, description: str, *tags: str) -> AgentSkill:
    return AgentSkill(id=id, name=id, description=description, tags=list(tags))


def demo_agents() -> list[HostedAgent]:
    """Fresh demo agents (table in the module docstring)."""
    return [
        HostedAgent(
            "summarizer",
            Summarizer(),
            "Extractive summary: the first sentences of a text",
            [_skill("summarize", "first sentences of the text", "text", "summary")],
            streaming=False,
        ),
        HostedAgent(
            "keywords",
            Keywords(),
            "The most frequent words of a text",
            [_skill("keywords", "top words of the text", "text", "keywords")],
            streaming=False,
        ),
        HostedAgent(
            "translator",
            Translator(),
            "Translates a text to upper case (an A2A v0.3 agent)",
            [_skill("translate", "upper-case translation", "text", "translation")],
            protocol="0.3",
        ),
        HostedAgent(
            "slow",
            Slow(),
            "Streams progress, completes after input.seconds",
            [_skill("wait", "wait and report progress", "demo", "progress")],
        ),
        HostedAgent(
            # not "flaky": that is the built-in python demo agent's slug
            "unreliable",
            Flaky(),
            "Fails the first message of each idempotency key, then succeeds",
            [_skill("flaky", "fail first, then succeed", "demo", "retry")],
            streaming=False,
        ),
        HostedAgent(
            "asker",
            Asker(),
            "Asks for more input (INPUT_REQUIRED) unless input.answer is given",
            [_skill("ask", "ask a question back", "demo", "input-required")],
        ),
    ]


def demo_server(host: str = DEMO_HOST, port: int = DEMO_PORT) -> AgentServer:
    """The demo agents on ``host:port`` (``port=0``: any free port), not started yet:
    ``.start()`` serves in a background thread, ``.run()`` in this one; ``.urls`` maps each
    agent to its base URL."""
    return AgentServer(demo_agents(), host=host, port=port)


def print_urls(urls: dict[str, str]) -> None:
    width = max(map(len, urls), default=0)
    for slug, url in urls.items():
        print(f"{slug:<{width}}  {url}", flush=True)


def serve_demo(
    host: str = DEMO_HOST,
    port: int = DEMO_PORT,
    *,
    on_ready: Callable[[dict[str, str]], None] | None = print_urls,
) -> None:
    """Serve the demo agents on ``host:port`` until SIGINT or SIGTERM.

    Once listening, calls ``on_ready`` with ``{agent slug: base URL}`` (by default prints one
    ``slug  url`` line per agent). Raises ``OSError`` if the port is taken.
    """
    server = demo_server(host, port)
    server.on_ready = (lambda: on_ready(server.urls)) if on_ready else None
    server.run()
