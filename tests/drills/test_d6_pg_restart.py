"""D6 with a real PostgreSQL restart (``pg_ctlcluster … restart``) under load.

This drill restarts a whole PostgreSQL cluster, so it is marked ``serial`` as well as
``slow``: run it on its own, never alongside other PostgreSQL tests (with pytest-xdist,
``-m "not serial"`` for the parallel part, then ``-m serial`` without ``-n``). By default it
restarts the test server's cluster (``PODIUM_TEST_DATABASE_URL``; the cluster is the one
in ``/etc/postgresql``, named ``main``); point it at a throwaway cluster with
``PODIUM_RESTART_DATABASE_URL`` and ``PODIUM_RESTART_CLUSTER`` ("15 mine").
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from podium.api.app import create_app
from podium.engine.launcher import launch
from podium.storage.store import SqlStore
from tests.api.helpers import bearer, serving
from tests.conftest import PG_URL
from tests.drills.harness import Fleet, drill_definition
from tests.support import TERMINAL, fast_settings, wait_for

N_RUNS = 20
LEASES = {"lease": 4.0, "heartbeat": 1.0, "sweep": 0.5}


def _cluster() -> list[str]:
    named = os.environ.get("PODIUM_RESTART_CLUSTER")
    if named:
        return named.split()
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions:
        pytest.skip("no PostgreSQL cluster to restart (/etc/postgresql is empty)")
    return [versions[-1], "main"]


def _restart(cluster: list[str]) -> float:
    """Restart the cluster; return how long PostgreSQL was away (the command's duration)."""
    t0 = time.monotonic()
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", *cluster, "restart", "-m", "fast"],
        check=True,
        timeout=60,
    )
    return time.monotonic() - t0


@pytest.fixture
def restart_url() -> Iterator[str]:
    """A fresh schema on the server to restart (dropped afterwards)."""
    url = os.environ.get("PODIUM_RESTART_DATABASE_URL", PG_URL)
    admin = sa.create_engine(
        url.replace("postgresql://", "postgresql+psycopg://"), pool_pre_ping=True
    )
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL at {url} is not reachable: {exc}")
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.mark.slow
@pytest.mark.serial
@pytest.mark.postgres
@pytest.mark.timeout(240)
async def test_d6_postgres_restart_under_load(restart_url: str, tmp_path: Path) -> None:
    """D6: PostgreSQL restarted while 2 worker processes run 20 runs and an API serves:
    every run completes, no agent call runs twice, no recovery is counted, the API answers
    200 or 503 (never a 500) and serves again afterwards, all without restarting Podium."""
    cluster = _cluster()
    store = SqlStore.open(restart_url)
    try:
        _, key = store.create_key(organization="acme", role="viewer", name="viewer@acme")
        settings = fast_settings(restart_url, require_keys=True, rate_limit=100_000)
        app = create_app(settings, store=store, worker=False)
        env = {"PODIUM_DB_CONNECT_TIMEOUT": "2"}
        async with serving(app) as client:
            with Fleet(restart_url, tmp_path, env=env, **LEASES) as fleet:
                fleet.start()
                fleet.start()
                defn = drill_definition()
                run_ids = [launch(store, defn, {}, organization="acme") for _ in range(N_RUNS)]
                await wait_for(fleet.records, lambda rs: sum(r.phase == "end" for r in rs) >= 10)
                restart = asyncio.create_task(asyncio.to_thread(_restart, cluster))
                statuses: Counter[int] = Counter()
                while not restart.done():
                    response = await client.get("/api/orchestrations", headers=bearer(key))
                    statuses[response.status_code] += 1
                    if response.status_code == 503:
                        assert response.headers["Retry-After"]
                    await asyncio.sleep(0.1)  # pacing the probe
                away = await restart
                runs = await wait_for(
                    lambda: [store.get_run(rid) for rid in run_ids],
                    lambda rs: all(r.status in TERMINAL for r in rs),
                    timeout=90,
                )
                fleet.check_no_unexpected_exit()
                records = fleet.records()
                fleet.stop_all()
            after = await client.get("/api/orchestrations", headers=bearer(key))
        starts = Counter(r.key for r in records if r.phase == "start")
        recoveries = sum(s.recoveries for rid in run_ids for s in store.steps_of(rid))
        print(
            f"D6 restart: PostgreSQL away {away:.2f} s; API answers during it {dict(statuses)}; "
            f"agent calls {sum(starts.values())} for {len(starts)} attempts; "
            f"recoveries {recoveries}"
        )
        assert {r.status for r in runs} == {"completed"}
        assert [k for k, n in starts.items() if n > 1] == []
        assert recoveries == 0
        assert 500 not in statuses
        assert after.status_code == 200
    finally:
        store.close()
