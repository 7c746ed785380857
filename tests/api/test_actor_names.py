"""The actor names the caller: a keyless API call (keys not required on loopback) is recorded
as ``anonymous@<client address>``, not as ``cli``."""

from __future__ import annotations

from podium.settings import Settings
from podium.storage.store import SqlStore
from tests.api.helpers import Finisher, api, failed_run


async def test_a_keyless_recovery_action_is_recorded_with_the_callers_address(
    store: SqlStore, settings: Settings, finish: Finisher
) -> None:
    """Issue 7 §5 (actor): the audit trail says who called, even without a key."""
    async with api(store, settings, require_keys=False, organization="acme") as client:
        run = await failed_run(client, {}, finish)
        response = await client.post(
            f"/api/orchestrations/{run['id']}/actions/skip", json={"note": "n/a"}
        )
        assert response.status_code == 200, response.text
        events = (await client.get(f"/api/orchestrations/{run['id']}/events")).json()
    [action] = [e for e in events if e["type"] == "orchestration.recovery.action"]
    assert action["data"]["actor"] == "anonymous@127.0.0.1", action
    step = store.get_step(response.json()["stepRecordId"])
    assert step.metadata["manualRecovery"][0]["actor"] == "anonymous@127.0.0.1"


async def test_a_keyed_call_is_still_recorded_with_the_key_name(
    store: SqlStore, settings: Settings, finish: Finisher
) -> None:
    """Issue 7 §5 (actor): a key's name still wins over the address."""
    _, key = store.create_key(organization="acme", role="operator", name="oncall@acme")
    async with api(store, settings, require_keys=False, organization="acme") as client:
        run = await failed_run(client, {}, finish)
        response = await client.post(
            f"/api/orchestrations/{run['id']}/actions/skip",
            json={},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert response.status_code == 200, response.text
    step = store.get_step(response.json()["stepRecordId"])
    assert step.metadata["manualRecovery"][0]["actor"] == "oncall@acme"
