"""A1: every route that takes an id, called with another organization's key, answers 404 and
leaks nothing. The calls are built from the OpenAPI document and the app's route table, so a
new route with a path parameter is covered (or makes this test fail) without editing it."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import APIWebSocketRoute, iter_route_contexts

from podium.api.app import create_app
from podium.net.urlguard import UrlGuard
from podium.settings import Settings
from podium.storage.store import SqlStore
from podium.storage.webhooks import WebhookStore
from tests.api.conftest import KeyMaker
from tests.api.helpers import ECHO, FAILING, Finisher, assert_problem, bearer, launch, push, serving
from tests.api.test_approvals_api import GATED
from tests.support import running_worker, wait_for
from tests.web.test_isolation import DASHBOARD_ID_ROUTES

# what a path parameter names, for the owner's objects and for objects that do not exist
UNKNOWN = {
    "runId": str(uuid.uuid4()),
    "stepRecordId": str(uuid.uuid4()),
    "name": "no-such-definition",
    "version": "9.9.9",
    "slug": "no-such-agent",
    "approvalId": str(uuid.uuid4()),
    "endpointId": str(uuid.uuid4()),
    "deliveryId": str(uuid.uuid4()),
    "keyId": "0123456789ab",
}
HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def sample(schema: dict[str, Any], components: dict[str, Any]) -> Any:
    """The smallest value that satisfies ``schema`` (required members only)."""
    if "$ref" in schema:
        return sample(components[schema["$ref"].rsplit("/", 1)[1]], components)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"]
            return sample(options[0], components)
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: sample(properties[name], components) for name in schema.get("required", [])}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return schema.get("minimum", 0)
    if kind == "boolean":
        return False
    return "x"


def request_for(
    path: str, operation: dict[str, Any], values: dict[str, str], components: dict[str, Any]
) -> tuple[str, dict[str, Any], Any]:
    """The URL, query and JSON body of a call to ``operation`` with path ``values``."""
    url = path
    query: dict[str, Any] = {}
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path":
            url = url.replace("{" + parameter["name"] + "}", values[parameter["name"]])
        elif parameter["in"] == "query" and parameter.get("required"):
            query[parameter["name"]] = sample(parameter["schema"], components)
    body = None
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        body = sample(content["application/json"]["schema"], components)
    return url, query, body


def scrub(text: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        text = text.replace(value, f"<{name}>")
    return text


async def call(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    operation: dict[str, Any],
    values: dict[str, str],
    components: dict[str, Any],
    headers: dict[str, str],
) -> httpx.Response:
    url, query, body = request_for(path, operation, values, components)
    request = client.request(method, url, params=query, json=body, headers=headers)
    return await asyncio.wait_for(request, timeout=10)


async def websocket_frames(app: FastAPI, path: str, headers: dict[str, str]) -> list[Any]:
    """Connect to a WebSocket route in-process; every message the app sends until it closes
    the connection (it must, within seconds, for a run it does not show)."""
    sent: list[Any] = []
    closed = asyncio.Event()
    connected = False

    async def receive() -> dict[str, Any]:
        nonlocal connected
        if not connected:
            connected = True
            return {"type": "websocket.connect"}
        await closed.wait()
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "websocket.close":
            closed.set()

    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "subprotocols": [],
        "state": {},
    }
    await asyncio.wait_for(app(scope, receive, send), timeout=10)
    assert closed.is_set() or not sent or sent[-1]["type"] == "websocket.close", sent
    return sent


async def test_every_route_with_an_id_hides_other_organizations_objects(
    store: SqlStore, settings: Settings, make_key: KeyMaker, finish: Finisher
) -> None:
    """A1."""
    app = create_app(settings, store=store, worker=False)
    app.state.webhook_guard = UrlGuard.allowing_loopback(UrlGuard(subject="WEBHOOK"))
    owner = bearer(make_key("acme", "admin", name="owner-key-name"))
    intruder = bearer(make_key("globex", "admin"))
    other_key, _ = store.create_key(organization="acme", role="viewer", name="owner-key-name")
    async with serving(app) as client:
        hook = await client.post(
            "/api/admin/webhooks", json={"url": "http://127.0.0.1:9/hook"}, headers=owner
        )
        assert hook.status_code == 201, hook.text
        await push(client, owner, FAILING)
        await push(client, owner, ECHO)
        run = await launch(client, owner, "recoverable")
        assert await finish(run["id"]) == "failed"
        step = store.steps_of(run["id"])[1]
        await push(client, owner, GATED)
        gated = await launch(client, owner, "gated")
        async with running_worker(store, settings):
            (approval,) = await wait_for(
                lambda: store.pending_approvals(gated["id"]), lambda found: len(found) == 1
            )
        registered = await client.post(
            "/api/admin/agents",
            json={"slug": "secret-agent", "target": "podium.agents.demo:echo"},
            headers=owner,
        )
        assert registered.status_code == 201, registered.text
        real = {
            "runId": run["id"],
            "stepRecordId": step.id,
            "name": "recoverable",
            "version": "1.0.0",
            "slug": "secret-agent",
            "approvalId": approval.id,
            "endpointId": hook.json()["id"],
            "deliveryId": WebhookStore(store.db).list_deliveries("acme")[0].id,
            "keyId": other_key.id,
        }
        # what the owner's objects contain, which the intruder must never see
        secrets = ["acme", "owner-key-name", "shaky", "orchestration.run", "reject"]

        document = app.openapi()
        components = document["components"]["schemas"]
        covered: list[tuple[str, str]] = []
        for path, item in document["paths"].items():
            names = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
            if not names:
                continue
            missing = [n for n in names if n not in real or n not in UNKNOWN]
            assert not missing, (
                f"{path} takes {missing}: give this test an object of another organization "
                "for it (in `real`) and an id that does not exist (in UNKNOWN)"
            )
            for method in (m for m in HTTP_METHODS if m in item):
                operation = item[method]
                args = (method, path, operation)
                theirs = await call(client, *args, real, components, intruder)
                body = assert_problem(theirs, 404)
                for secret in secrets:
                    assert secret not in theirs.text, (method, path, secret, body)
                nothing = await call(client, *args, UNKNOWN, components, intruder)
                assert_problem(nothing, 404)
                # indistinguishable from an object that does not exist
                assert scrub(theirs.text, real) == scrub(nothing.text, UNKNOWN), (method, path)
                covered.append((method, path))

        # the owner does reach each of these objects (so the 404s above are about scope);
        # deletions last, so that the other calls still find the object
        for method, path in sorted(covered, key=lambda c: c[0] == "delete"):
            operation = document["paths"][path][method]
            content = operation["responses"].get("200", {}).get("content", {})
            if "text/event-stream" in content:
                continue  # a stream of a run follows it live; its scoping was checked above
            mine = await call(client, method, path, operation, real, components, owner)
            assert mine.status_code != 404, (method, path, mine.text)

        # WebSocket routes are not in the OpenAPI document: find them in the route table
        for context in iter_route_contexts(app.routes):
            route_path = context.path or ""
            if "{" not in route_path:
                continue
            if not route_path.startswith("/api/"):
                # dashboard pages and forms: tests/web/test_isolation.py calls each of them
                # with another organization's session; a new one must be listed there
                assert route_path in DASHBOARD_ID_ROUTES, route_path
                continue
            if isinstance(context.original_route, APIWebSocketRoute):
                url = route_path
                for name, value in real.items():
                    url = url.replace("{" + name + "}", value)
                frames = await websocket_frames(app, url, intruder)
                leaked = json.dumps(frames[1:] if frames else [], default=str)
                for secret in secrets:
                    assert secret not in leaked, (route_path, frames)
                covered.append(("websocket", route_path))
            else:
                methods = {m.lower() for m in getattr(context.original_route, "methods", ())}
                documented = {m for m, p in covered if p == route_path}
                assert methods - {"head"} <= documented, (
                    f"{route_path} ({methods}) takes an id but is not in the OpenAPI document, "
                    "so this test cannot call it"
                )
    assert len(covered) >= 13
    assert len(covered) >= 11


async def test_diagnostics_hide_other_organizations_objects(
    store: SqlStore, settings: Settings, make_key: KeyMaker, finish: Finisher
) -> None:
    """A1 for ``GET /api/admin/diagnostics``, the one admin route that reports on every
    object without taking an id: another organization's findings never show, whether the
    run is named (``run``: 404, like a run that does not exist) or not."""
    app = create_app(settings, store=store, worker=False)
    owner = bearer(make_key("acme", "admin", name="owner-key-name"))
    intruder = bearer(make_key("globex", "admin"))
    async with serving(app) as client:
        await push(client, owner, FAILING)
        ghost = FAILING.replace("agent: reject", "agent: secret-ghost").replace(
            "recoverable", "haunted"
        )
        await push(client, owner, ghost)
        run = await launch(client, owner, "recoverable")
        assert await finish(run["id"]) == "failed"
        path = "/api/admin/diagnostics"
        mine = await client.get(path, headers=owner)
        assert mine.status_code == 200, mine.text
        assert "secret-ghost" in mine.text  # the owner sees its finding
        theirs = await client.get(path, headers=intruder)
        assert theirs.status_code == 200
        for secret in ("acme", "owner-key-name", "secret-ghost", run["id"]):
            assert secret not in theirs.text, secret
        named = await client.get(path, params={"run": run["id"]}, headers=intruder)
        nothing = await client.get(path, params={"run": UNKNOWN["runId"]}, headers=intruder)
        assert_problem(named, 404)
        assert_problem(nothing, 404)
        assert scrub(named.text, {"runId": run["id"]}) == scrub(
            nothing.text, {"runId": UNKNOWN["runId"]}
        )
