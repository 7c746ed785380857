"""Target A1 for the dashboard: every page and form that takes an id, called with another
organization's session, shows nothing of the object and changes nothing (both databases).

``tests/api/test_a1_isolation.py`` walks the route table and requires every dashboard route
with an id to be in :data:`DASHBOARD_ID_ROUTES`, so a new one cannot skip this test."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import httpx

from podium.events.webhooks.signing import new_secret
from podium.storage.store import SqlStore
from tests.api.conftest import KeyMaker
from tests.api.helpers import Finisher, bearer, failed_run
from tests.web.pages import csrf_of, post_form, sign_in

DASHBOARD_ID_ROUTES = frozenset(
    {
        "/runs/{run_id}",
        "/runs/{run_id}/actions/{action}",
        "/approvals/{approval_id}/decision",
        "/webhooks/deliveries/{delivery_id}/replay",
        "/definitions/{name}",
        "/definitions/{name}/versions/{version}/{change}",
    }
)


async def test_another_organization_sees_and_changes_nothing_through_the_dashboard(
    client: httpx.AsyncClient, store: SqlStore, make_key: KeyMaker, finish: Finisher
) -> None:
    store.webhooks.create_endpoint(
        organization="acme", url="https://hooks.example.invalid/x", secret=new_secret()
    )
    run = await failed_run(client, bearer(make_key("acme", "admin")), finish)
    delivery = store.webhooks.list_deliveries("acme")[0]
    await sign_in(client, make_key("globex", "admin"))
    token = csrf_of((await client.get("/")).text)
    run_id = run["id"]
    fake = "01a20000-0000-7000-8000-000000000000"
    for path, other in (
        (f"/runs/{run_id}", f"/runs/{fake}"),
        ("/definitions/recoverable", "/definitions/nothing"),
    ):
        page, unknown = await client.get(path), await client.get(other)
        assert page.status_code == unknown.status_code == 404, path
        # the same answer as for an id that does not exist: nothing leaks
        names = (run_id, "recoverable")
        strip = page.text
        for name in names:
            strip = strip.replace(name, "X")
        assert strip == unknown.text.replace(fake, "X").replace("nothing", "X"), path
    forms = [
        f"/runs/{run_id}/actions/retry",
        f"/runs/{run_id}/actions/abort",
        f"/approvals/{delivery.id}/decision",
        f"/webhooks/deliveries/{delivery.id}/replay",
        "/definitions/recoverable/versions/1.0.0/deactivate",
    ]
    for path in forms:
        response = await post_form(client, path, {"csrf": token, "decision": "abort"})
        assert response.status_code == 303, path
        kind = parse_qs(urlparse(response.headers["location"]).query)["kind"][0]
        assert kind == "error", path
    assert store.get_run(run_id).status == "failed"
    assert next(d for d in store.webhooks.list_deliveries("acme") if d.id == delivery.id).status
    assert store.get_definition("acme", "recoverable", "1.0.0").status == "active"
