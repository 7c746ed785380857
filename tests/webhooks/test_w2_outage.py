"""W2: the receiver goes down (refusing connections, then answering 500, then hanging) while
20 runs progress; after it recovers every event has been delivered, signed, in sequence
order per run, none lost and none acknowledged twice."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest

from podium.engine.launcher import launch
from podium.storage.store import SqlStore
from podium.storage.webhooks import WebhookStore
from tests.api.test_stream_support import chain
from tests.support import definition, fast_settings, running_worker, wait_for, wait_terminal
from tests.webhooks.conftest import EndpointMaker, dispatching, fast_webhook_settings
from tests.webhooks.receiver import Receiver, verify

RUNS = 20


@pytest.mark.slow
async def test_w2_receiver_outage_while_runs_progress(
    store: SqlStore,
    webhooks: WebhookStore,
    receiver: Receiver,
    endpoint: EndpointMaker,
    db_url: str,
) -> None:
    """W2: refusing, then 500s, then hanging; afterwards every event is delivered exactly
    once as acknowledged, in order per run, and verifies with standardwebhooks."""
    ep = endpoint()
    receiver.refuse()
    settings = fast_webhook_settings(retry_schedule=(0.3,) * 40, timeout_seconds=1.0)
    defn = definition(chain(3, seconds=0.05))
    async with running_worker(store, fast_settings(db_url)), dispatching(webhooks, settings):
        run_ids = [launch(store, defn, {}, organization="acme") for _ in range(RUNS // 2)]
        await asyncio.sleep(1.5)  # phase 1: connections refused
        receiver.mode = "500"
        receiver.start()
        run_ids += [launch(store, defn, {}, organization="acme") for _ in range(RUNS // 2)]
        await wait_for(receiver.snapshot, lambda r: len(r) >= 10)  # phase 2: 500s
        receiver.mode = "hang"
        await wait_for(receiver.snapshot, lambda r: any(x.answered == 0 for x in r))
        await asyncio.sleep(1.5)  # phase 3: hanging past the timeout
        receiver.mode = "ok"
        for run_id in run_ids:
            await wait_terminal(store, run_id, timeout=120)
        stored = {run_id: store.events_after(run_id) for run_id in run_ids}
        total = sum(len(v) for v in stored.values())
        await wait_for(receiver.accepted, lambda r: len(r) >= total, timeout=120)
    accepted = receiver.accepted()
    ids = [r.webhook_id for r in accepted]
    assert len(ids) == len(set(ids)) == total  # none lost, none acknowledged twice
    per_run: dict[str, list[int]] = defaultdict(list)
    for request in accepted:
        body = verify(ep.secret, request)
        per_run[body["runId"]].append(body["sequence"])
    for run_id, log in stored.items():
        assert per_run[run_id] == [e.sequence for e in log]
    assert webhooks.status_counts() == {"delivered": total}
    assert any(r.answered == 500 for r in receiver.snapshot())
