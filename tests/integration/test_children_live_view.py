"""The CLI's live view of a parent shows its children's progress (issue 11)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from rich.console import Console

from podium.agents.base import AgentContext
from podium.agents.registry.resolver import LocalAgents
from podium.cli.progress import Follower, Mode, RunDisplay
from podium.client.local import LocalBackend
from podium.domain.definition import parse_definition
from podium.engine.launcher import launch
from podium.storage.store import SqlStore
from tests.support import fast_settings, running_worker, wait_for, wait_terminal

CHILD = """
metadata: {name: slow-child, version: 1.0.0}
orchestration:
  steps:
    - {id: first, agent: echo}
    - {id: hold, agent: hold, depends_on: [first]}
"""

PARENT = """
metadata: {name: watched, version: 1.0.0}
orchestration:
  steps:
    - {id: left, type: orchestration, orchestration: {name: slow-child}}
    - {id: right, type: orchestration, orchestration: {name: slow-child}}
"""


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    s = SqlStore.open(db_url)
    yield s
    s.close()


async def test_the_live_view_of_a_parent_shows_each_childs_steps_done(
    store: SqlStore, db_url: str
) -> None:
    release = asyncio.Event()

    async def hold(input: Any, context: AgentContext) -> dict[str, Any]:
        await release.wait()
        return {}

    agents = LocalAgents()
    agents.add_python("hold", hold)
    settings = fast_settings(db_url, organization="acme")
    store.push_definition("acme", parse_definition(CHILD))
    run_id = launch(store, parse_definition(PARENT), {}, organization="acme")
    backend = LocalBackend(store, settings)
    display = RunDisplay(run_id)
    follower = Follower(backend, run_id, Console(), Mode.LIVE, display)
    async with running_worker(store, settings, agents):
        children = await wait_for(
            lambda: backend.tree(run_id),
            lambda t: len(t) == 3 and all(n.stepsDone == 1 for n in t[1:]),
        )
        redraw = asyncio.create_task(follower.redraw())
        await wait_for(lambda: display.tree, lambda t: t is not None and len(t) == 3)
        console = Console(record=True, width=160)
        console.print(display)
        text = console.export_text()
        for child in children[1:]:
            assert child.id in text
        assert text.count("1/2") == 2  # each child: one of its two steps done
        release.set()
        await wait_terminal(store, run_id)
        # the view follows the children to their end while they are active
        await wait_for(
            lambda: display.tree,
            lambda t: t is not None and all(n.status == "completed" for n in t),
        )
        await follower.stop_redrawing(redraw)
