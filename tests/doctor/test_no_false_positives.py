"""No false positives: a healthy database with thousands of completed, failed and running
runs (bulk rows, plus real runs driven by a worker) gives no finding at all."""

from __future__ import annotations

from podium.doctor.runner import diagnose
from podium.engine.launcher import launch
from podium.settings import Settings
from podium.storage.store import SqlStore
from tests.doctor.bulk import populate
from tests.doctor.conftest import options
from tests.support import definition, running_worker, wait_terminal

REAL = """
metadata: {name: real, version: 1.0.0}
orchestration:
  execution: {concurrency: {maxParallelSteps: 2}, timeoutSeconds: 3600}
  error_handling: {on_step_failure: {maxAttempts: 1}}
  steps:
    - {id: one, agent: echo, input: {text: a}}
    - {id: two, agent: echo, depends_on: [one], input: {text: b}}
    - {id: bad, agent: reject, depends_on: [one], input: {text: c}}
"""
COUNT = 3000


async def test_a_healthy_database_has_no_findings(store: SqlStore, settings: Settings) -> None:
    store.push_definition("acme", definition(REAL))
    run_ids = [launch(store, definition(REAL), {}, organization="acme") for _ in range(3)]
    async with running_worker(store, settings):
        for run_id in run_ids:
            assert (await wait_terminal(store, run_id)).status == "failed"
    populate(store, COUNT, running_share=0.05)
    report = diagnose(store, options(settings), None)
    assert not report.failed_checks, report.failed_checks
    assert report.findings == []
    assert report.exit_code == 0
    assert len(report.checks) >= 20
