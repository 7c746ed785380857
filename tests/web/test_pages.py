"""Dashboard pages and forms over HTTP (spec section 17), on both databases: what an operator
sees without JavaScript, what a viewer may do, and how sessions and CSRF tokens guard it."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlparse

import httpx

from podium.api.app import create_app
from podium.api.routers.stream import event_hub
from podium.settings import Settings
from podium.storage.records import EventRecord
from podium.storage.store import SqlStore
from podium.web.routes import brief, history_entry
from tests.api.conftest import KeyMaker
from tests.api.helpers import ECHO, Finisher, bearer, failed_run, launch, push, serving
from tests.web.pages import csrf_of, post_form, sign_in


def notice_of(response: httpx.Response) -> tuple[str, str]:
    """The notice and its kind that a form's 303 redirect carries."""
    assert response.status_code == 303, response.text
    query = parse_qs(urlparse(response.headers["location"]).query)
    return query["notice"][0], query.get("kind", ["info"])[0]


async def test_pages_need_a_session_when_keys_are_required(client: httpx.AsyncClient) -> None:
    for path in ("/", "/agents", "/definitions", "/runs/whatever"):
        response = await client.get(path)
        assert response.status_code == 303
        assert response.headers["location"] == "/signin"
    page = await client.get("/signin")
    assert page.status_code == 200
    assert 'name="key"' in page.text


async def test_sign_in_sets_a_strict_http_only_cookie_without_the_key(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    key = make_key("acme", "operator")
    response = await sign_in(client, key)
    cookie = response.headers["set-cookie"]
    assert "podium_session=" in cookie
    assert key not in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie.replace("Strict", "strict")
    page = await client.get("/")
    assert page.status_code == 200
    assert "acme" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")


async def test_a_wrong_key_is_refused_with_a_notice(client: httpx.AsyncClient) -> None:
    response = await post_form(client, "/signin", {"key": "pod_nope_nope"})
    notice, kind = notice_of(response)
    assert kind == "error"
    assert "not valid" in notice
    assert "set-cookie" not in response.headers


async def test_revoking_the_key_ends_the_session_at_once(
    client: httpx.AsyncClient, store: SqlStore, make_key: KeyMaker
) -> None:
    key = make_key("acme", "viewer")
    await sign_in(client, key)
    assert (await client.get("/")).status_code == 200
    key_id = key.split("_")[1]
    store.revoke_key(key_id)
    assert (await client.get("/")).status_code == 303


async def test_sign_out_ends_the_session(client: httpx.AsyncClient, make_key: KeyMaker) -> None:
    await sign_in(client, make_key("acme"))
    page = await client.get("/")
    response = await post_form(client, "/signout", {"csrf": csrf_of(page.text)})
    assert response.status_code == 303
    client.cookies.clear()  # the browser drops the cookie the response expired
    assert (
        'podium_session=""' in response.headers["set-cookie"]
        or "Max-Age=0" in (response.headers["set-cookie"])
    )
    assert (await client.get("/")).status_code == 303


async def test_the_runs_list_filters_by_status_and_definition(
    client: httpx.AsyncClient, make_key: KeyMaker, finish: Finisher
) -> None:
    key = make_key("acme", "admin")
    headers = bearer(key)
    failed = await failed_run(client, headers, finish)
    await push(client, headers, ECHO)
    ok = await launch(client, headers, "greet")
    assert await finish(ok["id"]) == "completed"
    await sign_in(client, key)
    everything = (await client.get("/")).text
    assert failed["id"] in everything
    assert ok["id"] in everything
    only_failed = (await client.get("/", params={"status": "failed"})).text
    assert failed["id"] in only_failed
    assert ok["id"] not in only_failed
    by_definition = (await client.get("/", params={"definition": "greet"})).text
    assert ok["id"] in by_definition
    assert failed["id"] not in by_definition
    none = (await client.get("/", params={"search": "no-such-thing"})).text
    assert "No runs match." in none


async def test_the_runs_list_pages_with_a_cursor(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    key = make_key("acme", "admin")
    await push(client, bearer(key), ECHO)
    ids = [(await launch(client, bearer(key), "greet"))["id"] for _ in range(52)]
    await sign_in(client, key)
    first = (await client.get("/")).text
    assert ids[-1] in first
    assert ids[0] not in first
    link = first.split('class="next" href="')[1].split('"')[0].replace("&amp;", "&")
    second = (await client.get(link)).text
    assert ids[0] in second
    assert ids[1] in second
    assert ids[-1] not in second


async def test_the_run_page_draws_every_step_with_its_status(
    client: httpx.AsyncClient, make_key: KeyMaker, finish: Finisher
) -> None:
    key = make_key("acme", "admin")
    run = await failed_run(client, bearer(key), finish)
    await sign_in(client, key)
    page = (await client.get(f"/runs/{run['id']}")).text
    assert 'data-step="first" data-status="completed"' in page
    assert 'data-step="shaky" data-status="failed"' in page
    assert 'data-step="last" data-status="pending"' in page  # never started, still drawn
    assert "agent_rejected" in page or "rejected" in page  # the failed step's error
    assert "orchestration.step.failed" in page  # the event log


WIDE = "\n".join(
    [
        "metadata: {name: wide, version: 1.0.0}",
        "orchestration:",
        "  steps:",
        *(f"    - {{id: s{i}, agent: echo, input: {{text: s{i}}}}}" for i in range(80)),
    ]
)


async def test_a_long_event_log_shows_its_last_events_and_links_to_all(
    client: httpx.AsyncClient, store: SqlStore, make_key: KeyMaker, finish: Finisher
) -> None:
    key = make_key("acme", "admin")
    await push(client, bearer(key), WIDE)
    run = await launch(client, bearer(key), "wide")
    assert await finish(run["id"]) == "completed"
    last = store.get_run(run["id"]).last_sequence
    assert last > 240  # queued, running and completed for each of 80 steps
    await sign_in(client, key)
    page = (await client.get(f"/runs/{run['id']}")).text
    rows = re.findall(r'<tr data-sequence="(\d+)">', page)
    assert [int(r) for r in rows] == list(range(last - 199, last + 1))
    assert f"{last - 200} before them are not shown" in page
    assert f'href="/runs/{run["id"]}?events=all#events"' in page
    assert page.count("<li><time>") == 80 * 3  # every step's whole history, as before
    everything = (await client.get(f"/runs/{run['id']}?events=all")).text
    assert len(re.findall(r'<tr data-sequence="', everything)) == last
    assert "not shown" not in everything


def test_an_event_too_deep_to_serialise_is_shown_truncated() -> None:
    deep: dict[str, object] = {}
    inner = deep
    for _ in range(5000):
        inner["a"] = inner = {}
    shown = brief({"output": deep})
    assert shown.startswith('{"output": {"a": {"a": ')
    assert shown.endswith("...")
    assert len(shown) == 160
    assert brief({"text": "short"}) == '{"text": "short"}'


def test_a_step_history_line_escapes_what_the_agent_said() -> None:
    event = EventRecord(
        id="e",
        run_id="r",
        sequence=7,
        type="orchestration.step.progress",
        organization_slug="acme",
        timestamp=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        step_id="s",
        step_record_id="sr",
        data={"attempt": 2, "message": "<b>half</b> done"},
    )
    assert history_entry(event) == (
        "<time>03:04:05.678</time> progress · attempt 2 · &lt;b&gt;half&lt;/b&gt; done"
    )
    failed = dataclasses.replace(
        event, type="orchestration.step.failed", data={"error": {"code": "agent_rejected"}}
    )
    assert history_entry(failed) == "<time>03:04:05.678</time> failed · agent_rejected"


async def test_a_page_hears_at_once_when_one_of_its_runs_moves(
    store: SqlStore, settings: Settings, make_key: KeyMaker, finish: Finisher
) -> None:
    app = create_app(settings, store=store, worker=False)
    key = make_key("acme", "admin")
    async with serving(app) as client:
        await push(client, bearer(key), ECHO)
        done = await launch(client, bearer(key), "greet")
        assert await finish(done["id"]) == "completed"
        run = await failed_run(client, bearer(key), finish)
        last = store.get_run(run["id"]).last_sequence
        both = f"/runs/moved?run={run['id']}&run={done['id']}"
        position = last + store.get_run(done["id"]).last_sequence
        await sign_in(client, key)
        assert (await client.get(f"/runs/moved?run={run['id']}")).json() == {"position": last}
        assert (await client.get(both)).json() == {"position": position}
        ahead = await client.get(f"/runs/moved?run={run['id']}&after={last - 1}")
        assert ahead.json() == {"position": last}

        async def retry_once_waiting() -> None:
            deadline = time.monotonic() + 10
            while event_hub(app.state).subscriptions(run["id"]) == 0:
                assert time.monotonic() < deadline, "the page never waited"
                await asyncio.sleep(0.01)
            retried = await client.post(
                f"/api/orchestrations/{run['id']}/actions/retry", json={}, headers=bearer(key)
            )
            assert retried.status_code == 200, retried.text

        started = time.monotonic()
        async with asyncio.TaskGroup() as group:
            group.create_task(retry_once_waiting())
            moved = await client.get(f"{both}&after={position}")
        assert time.monotonic() - started < 5  # woken by the commit, not at the 20 s timeout
        assert moved.json()["position"] > position
        assert moved.headers["cache-control"] == "no-store"


async def test_another_organization_cannot_wait_on_a_run(
    client: httpx.AsyncClient, make_key: KeyMaker, finish: Finisher
) -> None:
    run = await failed_run(client, bearer(make_key("acme", "admin")), finish)
    assert (await client.get(f"/runs/moved?run={run['id']}")).status_code == 401
    await sign_in(client, make_key("globex", "admin"))
    assert (await client.get(f"/runs/moved?run={run['id']}&after=0")).status_code == 404
    assert (await client.get(f"/runs/moved?run={run['id']}&after=x")).status_code == 422
    assert (await client.get("/runs/moved")).status_code == 422
    many = "&".join(f"run={i:036d}" for i in range(51))
    assert (await client.get(f"/runs/moved?{many}")).status_code == 422


async def test_retry_with_input_changes_works_as_a_plain_form(
    client: httpx.AsyncClient, store: SqlStore, make_key: KeyMaker, finish: Finisher
) -> None:
    key = make_key("acme", "operator")
    run = await failed_run(client, bearer(make_key("acme", "admin")), finish)
    await sign_in(client, key)
    page = (await client.get(f"/runs/{run['id']}")).text
    response = await post_form(
        client,
        f"/runs/{run['id']}/actions/retry",
        {
            "csrf": csrf_of(page),
            "input": '{"text": "fixed"}',
            "agentOverrides": "shaky=echo",
            "note": "from the dashboard",
        },
    )
    notice, kind = notice_of(response)
    assert kind == "info"
    assert "retry of step shaky accepted" in notice
    assert store.get_run(run["id"]).status == "running"
    assert await finish(run["id"]) == "completed"
    step = next(s for s in store.steps_of(run["id"]) if s.step_id == "shaky")
    assert step.input == {"text": "fixed"}


async def test_a_second_action_in_flight_is_shown_as_a_conflict_notice(
    client: httpx.AsyncClient, store: SqlStore, make_key: KeyMaker, finish: Finisher
) -> None:
    key = make_key("acme", "operator")
    run = await failed_run(client, bearer(make_key("acme", "admin")), finish)
    await sign_in(client, key)
    token = csrf_of((await client.get(f"/runs/{run['id']}")).text)
    path = f"/runs/{run['id']}/actions/retry"
    notice_of(await post_form(client, path, {"csrf": token, "delaySeconds": "3600"}))
    notice, kind = notice_of(await post_form(client, path, {"csrf": token}))
    assert kind == "error"
    assert notice.startswith("retry refused:")
    assert "in flight" in notice


async def test_bad_json_in_a_form_names_the_field_and_changes_nothing(
    client: httpx.AsyncClient, store: SqlStore, make_key: KeyMaker, finish: Finisher
) -> None:
    key = make_key("acme", "operator")
    run = await failed_run(client, bearer(make_key("acme", "admin")), finish)
    await sign_in(client, key)
    token = csrf_of((await client.get(f"/runs/{run['id']}")).text)
    response = await post_form(
        client, f"/runs/{run['id']}/actions/retry", {"csrf": token, "input": "{nope"}
    )
    notice, kind = notice_of(response)
    assert kind == "error"
    assert "input: is not valid JSON" in notice
    assert store.get_run(run["id"]).status == "failed"


async def test_a_form_without_the_csrf_token_is_refused(
    client: httpx.AsyncClient, store: SqlStore, make_key: KeyMaker, finish: Finisher
) -> None:
    key = make_key("acme", "operator")
    run = await failed_run(client, bearer(make_key("acme", "admin")), finish)
    await sign_in(client, key)
    for token in ("", "forged"):
        response = await post_form(client, f"/runs/{run['id']}/actions/abort", {"csrf": token})
        notice, kind = notice_of(response)
        assert kind == "error"
        assert "form has expired" in notice
    assert store.get_run(run["id"]).status == "failed"


async def test_a_viewer_sees_no_mutating_buttons_and_is_refused_anyway(
    client: httpx.AsyncClient, store: SqlStore, make_key: KeyMaker, finish: Finisher
) -> None:
    run = await failed_run(client, bearer(make_key("acme", "admin")), finish)
    await sign_in(client, make_key("acme", "viewer"))
    page = (await client.get(f"/runs/{run['id']}")).text
    assert "/actions/retry" not in page
    assert "/actions/abort" not in page
    response = await post_form(client, f"/runs/{run['id']}/actions/abort", {"csrf": csrf_of(page)})
    notice, kind = notice_of(response)
    assert kind == "error"
    assert "viewer" in notice
    assert store.get_run(run["id"]).status == "failed"


async def test_another_organizations_run_is_not_found(
    client: httpx.AsyncClient, make_key: KeyMaker, finish: Finisher
) -> None:
    run = await failed_run(client, bearer(make_key("acme", "admin")), finish)
    await sign_in(client, make_key("globex", "admin"))
    page = await client.get(f"/runs/{run['id']}")
    assert page.status_code == 404
    assert run["id"] not in page.text.replace(f"/runs/{run['id']}", "").split("<main>")[0]


async def test_the_session_reads_the_api_but_never_mutates_it(
    client: httpx.AsyncClient, make_key: KeyMaker, finish: Finisher
) -> None:
    key = make_key("acme", "admin")
    run = await failed_run(client, bearer(key), finish)
    await sign_in(client, key)
    assert (await client.get(f"/api/orchestrations/{run['id']}/status")).status_code == 200
    forged = await client.post(f"/api/orchestrations/{run['id']}/actions/abort", json={})
    assert forged.status_code == 401


async def test_agents_and_definitions_pages_show_the_registry_and_versions(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    key = make_key("acme", "admin")
    await push(client, bearer(key), ECHO)
    await sign_in(client, key)
    agents = (await client.get("/agents")).text
    assert 'data-agent="echo"' in agents
    assert "Routing policy" in agents
    definitions = (await client.get("/definitions")).text
    assert 'data-definition="greet"' in definitions
    page = await client.get("/definitions/greet", params={"version": "1.0.0"})
    assert "Valid: 2 steps." in page.text
    assert "hello {{ parameters.who }}" in page.text
    token = csrf_of(page.text)
    changed = await post_form(
        client, "/definitions/greet/versions/1.0.0/deactivate", {"csrf": token}
    )
    notice, kind = notice_of(changed)
    assert kind == "info"
    assert "greet@1.0.0 is inactive" in notice


CHECKPOINTED = """
metadata: {name: reviewed, version: 1.0.0}
orchestration:
  steps:
    - id: draft
      agent: echo
      input: {text: "a draft"}
      checkpoint_after: {question: "Publish the draft?", options: [continue, retry, abort]}
    - {id: publish, agent: echo, depends_on: [draft], input: {text: published}}
"""


async def at_checkpoint(client: httpx.AsyncClient, key: str, store: SqlStore, db_url: str) -> str:
    """A run of CHECKPOINTED waiting at its checkpoint; its id."""
    from tests.support import fast_settings, running_worker, wait_for

    await push(client, bearer(key), CHECKPOINTED)
    run = await launch(client, bearer(key), "reviewed")
    async with running_worker(store, fast_settings(db_url)):
        await wait_for(lambda: store.get_run(run["id"]).status, lambda s: s == "checkpoint")
    return str(run["id"])


async def test_the_inbox_shows_the_output_to_review_and_continue_resumes_the_run(
    client: httpx.AsyncClient,
    store: SqlStore,
    db_url: str,
    make_key: KeyMaker,
    finish: Finisher,
) -> None:
    key = make_key("acme", "admin")
    run_id = await at_checkpoint(client, key, store, db_url)
    await sign_in(client, key)
    inbox = (await client.get("/approvals")).text
    assert "Publish the draft?" in inbox
    assert "a draft" in inbox
    approval = store.pending_approvals(run_id)[0]
    form = {"csrf": csrf_of(inbox), "decision": "continue", "note": "looks good"}
    notice, kind = notice_of(await post_form(client, f"/approvals/{approval.id}/decision", form))
    assert kind == "info"
    assert notice.startswith("continue:")
    assert await finish(run_id) == "completed"
    decided = store.get_approval(approval.id)
    assert (decided.decision, decided.note) == ("continue", "looks good")
    # a second decision is refused and names the first
    notice, kind = notice_of(await post_form(client, f"/approvals/{approval.id}/decision", form))
    assert kind == "error"
    assert "continue" in notice
    assert "No approval is waiting." in (await client.get("/approvals")).text


async def test_another_organization_sees_none_of_the_inbox(
    client: httpx.AsyncClient, store: SqlStore, db_url: str, make_key: KeyMaker
) -> None:
    run_id = await at_checkpoint(client, make_key("acme", "admin"), store, db_url)
    await sign_in(client, make_key("globex", "admin"))
    inbox = (await client.get("/approvals")).text
    assert "No approval is waiting." in inbox
    assert run_id not in inbox


async def test_the_doctor_page_lists_findings_with_their_fix(
    client: httpx.AsyncClient, store: SqlStore, db_url: str, make_key: KeyMaker
) -> None:
    import sqlalchemy as sa

    from podium.storage.tables import runs

    key = make_key("acme", "admin")
    run_id = await at_checkpoint(client, key, store, db_url)
    store.db.write(
        lambda conn: conn.execute(
            sa.update(runs).where(runs.c.id == run_id).values(status="failed")
        )
    )
    await sign_in(client, key)
    page = (await client.get("/doctor")).text
    assert 'data-check="checkpoints.on-ended-run"' in page
    assert f'href="/runs/{run_id}"' in page
    assert "podium approvals abort" in page


async def test_the_webhooks_page_replays_a_dead_letter(
    client: httpx.AsyncClient, store: SqlStore, make_key: KeyMaker
) -> None:
    import sqlalchemy as sa

    from podium.events.webhooks.signing import new_secret
    from podium.storage.tables import webhook_deliveries

    key = make_key("acme", "admin")
    endpoint = store.webhooks.create_endpoint(
        organization="acme", url="https://hooks.example.invalid/x", secret=new_secret()
    )
    await push(client, bearer(key), ECHO)
    await launch(client, bearer(key), "greet")
    delivery = store.webhooks.list_deliveries("acme")[0]
    store.db.write(
        lambda conn: conn.execute(
            sa.update(webhook_deliveries)
            .where(webhook_deliveries.c.id == delivery.id)
            .values(status="dead", last_status_code=500)
        )
    )
    await sign_in(client, key)
    page = (await client.get("/webhooks")).text
    assert f'data-endpoint="{endpoint.id}"' in page
    assert f'data-delivery="{delivery.id}"' in page
    response = await post_form(
        client, f"/webhooks/deliveries/{delivery.id}/replay", {"csrf": csrf_of(page)}
    )
    notice, kind = notice_of(response)
    assert kind == "info", notice
    replayed = next(d for d in store.webhooks.list_deliveries("acme") if d.id == delivery.id)
    assert replayed.status == "pending"
