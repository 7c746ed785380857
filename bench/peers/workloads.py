"""The engine benchmark's workloads on Podium's peers, with no-op steps, at their defaults.

Runs inside ``bench/peers/.venv`` (made by ``run.py``), never in Podium's environment:

    python workloads.py SYSTEM DB WORKLOAD --url URL

URL is a file path for SQLite and a ``postgresql://`` URL otherwise. SYSTEM is ``langgraph``
(LangGraph with its async SQLite or PostgreSQL checkpointer, default
durability) or ``dbos`` (DBOS workflows of ``@DBOS.step`` functions, fan-out with
``asyncio.gather``); DB is ``sqlite`` or ``postgresql``; WORKLOAD is W1 (a chain of 200), W2 (1
then 500 in parallel, at most 50 at once where the system has such a limit, then 1), or W3 (200
runs of a chain of 5, started together). Prints one JSON object: wall seconds and steps.
Set-up (schema creation, graph compilation, ``DBOS.launch``) is outside the timed part.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import operator
import time
import uuid
from typing import Annotated, Any, TypedDict

STEPS = {"W1": 200, "W2": 502, "W3": 1000}


class State(TypedDict):
    n: Annotated[int, operator.add]


async def _noop_node(state: State) -> dict[str, int]:
    return {"n": 1}


def _langgraph_chain(n: int) -> Any:
    from langgraph.graph import END, START, StateGraph

    graph = StateGraph(State)
    for i in range(n):
        graph.add_node(f"s{i}", _noop_node)
    graph.add_edge(START, "s0")
    for i in range(1, n):
        graph.add_edge(f"s{i - 1}", f"s{i}")
    graph.add_edge(f"s{n - 1}", END)
    return graph


def _langgraph_fan(n: int) -> Any:
    from langgraph.graph import END, START, StateGraph

    graph = StateGraph(State)
    graph.add_node("root", _noop_node)
    graph.add_node("join", _noop_node)
    names = [f"p{i}" for i in range(n)]
    for name in names:
        graph.add_node(name, _noop_node)
        graph.add_edge("root", name)
    graph.add_edge(START, "root")
    graph.add_edge(names, "join")
    graph.add_edge("join", END)
    return graph


async def langgraph(db: str, workload: str, url: str) -> float:
    if db == "sqlite":
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        saver_cm: Any = AsyncSqliteSaver.from_conn_string(url)
    else:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        saver_cm = AsyncPostgresSaver.from_conn_string(_fresh_schema(url))
    async with saver_cm as saver:
        if db == "postgresql":
            await saver.setup()
        graph = (
            _langgraph_fan(500)
            if workload == "W2"
            else _langgraph_chain(200 if workload == "W1" else 5)
        )
        app = graph.compile(checkpointer=saver)
        runs = 200 if workload == "W3" else 1
        configs = [
            {
                "configurable": {"thread_id": uuid.uuid4().hex},
                "recursion_limit": 1000,
                "max_concurrency": 50,
            }
            for _ in range(runs)
        ]
        # one warm-up run outside the timing (imports, first statements)
        await (
            _langgraph_chain(2)
            .compile(checkpointer=saver)
            .ainvoke({"n": 0}, {"configurable": {"thread_id": uuid.uuid4().hex}})
        )
        started = time.perf_counter()
        results = await asyncio.gather(*(app.ainvoke({"n": 0}, c) for c in configs))
        wall = time.perf_counter() - started
    expected = STEPS[workload] // runs
    if any(r["n"] != expected for r in results):
        raise SystemExit(f"langgraph ran {[r['n'] for r in results][:3]} steps, not {expected}")
    return wall


async def dbos(db: str, workload: str, url: str) -> float:
    from dbos import DBOS

    schema = f"dbos_{uuid.uuid4().hex[:8]}"
    system_url = f"sqlite:///{url}" if db == "sqlite" else url
    config: dict[str, Any] = {"name": "podium-peer-bench", "system_database_url": system_url}
    if db == "postgresql":
        config["dbos_system_schema"] = schema
    DBOS(config=config)  # type: ignore[arg-type]
    counter = {"n": 0}

    @DBOS.step()
    async def noop() -> int:
        counter["n"] += 1
        return 1

    @DBOS.workflow()
    async def chain(n: int) -> None:
        for _ in range(n):
            await noop()

    @DBOS.workflow()
    async def fan(n: int) -> None:
        await noop()
        await asyncio.gather(*(noop() for _ in range(n)))
        await noop()

    DBOS.launch()
    try:
        await chain(2)  # warm-up outside the timing
        counter["n"] = 0
        started = time.perf_counter()
        if workload == "W1":
            await chain(200)
        elif workload == "W2":
            await fan(500)
        else:
            handles = [await DBOS.start_workflow_async(chain, 5) for _ in range(200)]
            await asyncio.gather(*(h.get_result() for h in handles))
        wall = time.perf_counter() - started
    finally:
        DBOS.destroy()
        if db == "postgresql":
            import psycopg

            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    if counter["n"] != STEPS[workload]:
        raise SystemExit(f"dbos ran {counter['n']} steps, not {STEPS[workload]}")
    return wall


def _fresh_schema(url: str) -> str:
    """``url`` with its ``search_path`` set to a new, empty schema (each measurement starts
    from empty tables, as Podium's does)."""
    import psycopg

    schema = f"lg_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("system", choices=["langgraph", "dbos"])
    parser.add_argument("db", choices=["sqlite", "postgresql"])
    parser.add_argument("workload", choices=sorted(STEPS))
    parser.add_argument("--url", required=True)
    args = parser.parse_args()
    run = langgraph if args.system == "langgraph" else dbos
    wall = asyncio.run(run(args.db, args.workload, args.url))
    print(json.dumps({"wall_s": wall, "steps": STEPS[args.workload]}))


if __name__ == "__main__":
    main()
