"""W4: a dispatcher killed with SIGKILL after the events committed and while it is sending
loses nothing: after a restart every event is delivered, in order, once acknowledged."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from podium.engine.launcher import launch
from podium.storage.store import SqlStore
from podium.storage.webhooks import WebhookStore
from tests.api.test_stream_support import chain
from tests.support import definition, wait_for
from tests.webhooks.conftest import EndpointMaker, dispatching, fast_webhook_settings
from tests.webhooks.receiver import Receiver, verify

ROOT = Path(__file__).resolve().parents[2]


async def test_w4_kill_9_between_commit_and_send_loses_nothing(
    store: SqlStore,
    webhooks: WebhookStore,
    receiver: Receiver,
    endpoint: EndpointMaker,
    db_url: str,
) -> None:
    """W4: kill -9 the dispatching process while its request hangs; the delivery is leased,
    not acknowledged. A new dispatcher takes it over when the lease runs out."""
    ep = endpoint()
    run_id = launch(store, definition(chain(1)), {}, organization="acme")
    stored = store.events_after(run_id)
    receiver.mode = "hang"
    proc = subprocess.Popen(  # noqa: ASYNC220  # started once; the test then only polls
        [sys.executable, "-m", "tests.webhooks.dispatcher_proc", db_url, "2"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        await wait_for(receiver.snapshot, lambda r: len(r) == 1, timeout=60)
        leased = [d for d in webhooks.list_deliveries(None) if d.status == "delivering"]
        assert len(leased) == 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    receiver.mode = "ok"
    async with dispatching(webhooks, fast_webhook_settings()):
        await wait_for(receiver.accepted, lambda r: len(r) == len(stored), timeout=60)
    accepted = receiver.accepted()
    assert [verify(ep.secret, r)["sequence"] for r in accepted] == [e.sequence for e in stored]
    assert [r.webhook_id for r in accepted] == [e.id for e in stored]
    assert webhooks.status_counts() == {"delivered": len(stored)}
