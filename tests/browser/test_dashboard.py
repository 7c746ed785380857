"""The dashboard in a real headless Chromium (spec section 17), on both databases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.api.helpers import FAILING, YAML
from tests.browser.conftest import Server

SLOW = """
metadata: {name: slow-pair, version: 1.0.0}
orchestration:
  steps:
    - {id: wait, agent: sleep, input: {seconds: 1.5}}
    - {id: after, agent: echo, depends_on: [wait], input: {text: done}}
"""

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "run-page.png"


def api(server: Server, key: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=30)


def launched(server: Server, doc: str, name: str, key: str | None = None) -> str:
    with api(server, key) as client:
        client.post("/api/definitions", content=doc, headers=YAML).raise_for_status()
        response = client.post("/api/orchestrations", json={"definition": name})
        response.raise_for_status()
        run_id: str = response.json()["id"]
        return run_id


def ended(server: Server, run_id: str, key: str | None = None) -> str:
    with api(server, key) as client:
        for _ in range(600):
            status: str = client.get(f"/api/orchestrations/{run_id}/status").json()["status"]
            if status in ("completed", "failed", "aborted"):
                return status
            threading_wait(0.05)
    raise AssertionError(f"run {run_id} did not end")


def threading_wait(seconds: float) -> None:
    import threading

    threading.Event().wait(seconds)


async def test_a_dag_node_changes_colour_live_while_the_run_progresses(
    browser: Any, server_factory: Any
) -> None:
    server = server_factory()
    run_id = launched(server, FAILING, "recoverable")
    assert ended(server, run_id) == "failed"
    page = await browser.new_page()
    await page.set_viewport_size({"width": 1280, "height": 900})
    await page.goto(f"{server.url}/runs/{run_id}")
    node = page.locator('svg.dag g.node[data-step="last"]')
    assert await node.get_attribute("data-status") == "pending"
    before = await node.locator("rect").evaluate("r => getComputedStyle(r).fill")
    # the page is open; the run moves on (an operator retries elsewhere): no reload needed,
    # the page follows the run's SSE stream
    with api(server) as client:
        client.post(
            f"/api/orchestrations/{run_id}/actions/retry",
            json={"modifications": {"agentOverrides": {"shaky": "echo"}}},
        ).raise_for_status()
    await page.wait_for_selector(
        'svg.dag g.node[data-step="last"][data-status="completed"]', timeout=20_000
    )
    after = await node.locator("rect").evaluate("r => getComputedStyle(r).fill")
    assert after != before
    assert await node.locator("text.status").text_content() == "completed"
    await page.wait_for_selector('#run-status[data-status="completed"]', timeout=10_000)
    assert await page.locator("#events tbody tr").count() >= 10
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOT), full_page=False)


async def test_retry_with_changes_then_a_conflict_shown_as_a_message_then_abort(
    browser: Any, server_factory: Any
) -> None:
    server = server_factory()
    run_id = launched(server, FAILING, "recoverable")
    assert ended(server, run_id) == "failed"
    page = await browser.new_page()
    await page.goto(f"{server.url}/runs/{run_id}")
    retry = page.locator("#retry-form")
    await retry.locator('textarea[name="input"]').fill('{"text": "again"}')
    await retry.locator('input[name="delaySeconds"]').fill("3600")
    await retry.locator('input[name="note"]').fill("wait for the fix")
    async with page.expect_navigation():
        await retry.locator("button").click()
    await page.wait_for_selector("#notice.info")
    assert "retry of step shaky accepted" in await page.locator("#notice").text_content()
    # the delayed retry is in flight: a second retry is refused, and says why
    async with page.expect_navigation():
        await page.locator("#retry-form button").click()
    await page.wait_for_selector("#notice.error")
    message = await page.locator("#notice.error").text_content()
    assert message.startswith("retry refused:")
    assert "in flight" in message
    await page.locator('#abort-form input[name="note"]').fill("giving up")
    async with page.expect_navigation():
        await page.locator("#abort-form button").click()
    await page.wait_for_selector("#notice")
    text = await page.locator("#notice").text_content()
    assert "abort" in text
    if "refused" in text:  # abort waits for the action in flight: it says so
        assert "in flight" in text
    else:
        assert ended(server, run_id) == "aborted"


async def test_the_runs_list_filters_by_status(browser: Any, server_factory: Any) -> None:
    server = server_factory()
    failed = launched(server, FAILING, "recoverable")
    assert ended(server, failed) == "failed"
    slow = launched(server, SLOW, "slow-pair")
    page = await browser.new_page()
    await page.goto(server.url)
    await page.wait_for_selector(f'tr[data-run="{slow}"]')
    await page.locator('input[name="status"][value="failed"]').check()
    await page.locator("#filters button").click()
    await page.wait_for_selector(f'tr[data-run="{failed}"]')
    assert await page.locator(f'tr[data-run="{slow}"]').count() == 0
    # live: the other run's status changes on the unfiltered list without a reload
    await page.goto(server.url)
    await page.wait_for_selector(f'tr[data-run="{slow}"][data-status="completed"]', timeout=20_000)


async def test_sign_in_viewer_without_buttons_csrf_refusal_and_sign_out(
    browser: Any, server_factory: Any
) -> None:
    server = server_factory(require_keys=True)
    _, admin = server.store.create_key(organization="acme", role="admin", name="admin")
    _, viewer = server.store.create_key(organization="acme", role="viewer", name="viewer")
    run_id = launched(server, FAILING, "recoverable", admin)
    assert ended(server, run_id, admin) == "failed"
    page = await browser.new_page()
    await page.goto(f"{server.url}/runs/{run_id}")
    assert page.url.endswith("/signin")
    await page.locator('input[name="key"]').fill(viewer)
    await page.locator("form button").click()
    await page.goto(f"{server.url}/runs/{run_id}")
    assert await page.locator("#retry-form").count() == 0
    assert (
        await page.locator('svg.dag g.node[data-step="shaky"]').get_attribute("data-status")
        == "failed"
    )
    cookies = await page.context.cookies()
    session = next(c for c in cookies if c["name"] == "podium_session")
    assert session["httpOnly"]
    assert session["sameSite"] == "Strict"
    assert viewer not in session["value"]
    # a forged form (no CSRF token) is refused, whatever the role
    response = await page.request.post(
        f"{server.url}/runs/{run_id}/actions/abort", form={"note": "forged"}, max_redirects=0
    )
    assert response.status == 303
    assert "expired" in response.headers["location"]
    await page.locator("button.link").click()  # sign out
    await page.goto(f"{server.url}/")
    assert page.url.endswith("/signin")


async def test_forms_work_with_javascript_disabled(browser: Any, server_factory: Any) -> None:
    server = server_factory()
    run_id = launched(server, FAILING, "recoverable")
    assert ended(server, run_id) == "failed"
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    await page.goto(f"{server.url}/runs/{run_id}")
    await page.locator('#skip-form textarea[name="replacementOutput"]').fill('{"text": "stub"}')
    async with page.expect_navigation():
        await page.locator("#skip-form button").click()
    await page.wait_for_selector("#notice.info")
    assert "skip of step shaky accepted" in await page.locator("#notice").text_content()
    assert ended(server, run_id) == "completed"
    await page.goto(f"{server.url}/runs/{run_id}")
    assert await page.locator('g.node[data-step="shaky"]').get_attribute("data-status") == (
        "skipped"
    )
    await context.close()


CHECKPOINTED = """
metadata: {name: reviewed, version: 1.0.0}
orchestration:
  steps:
    - id: draft
      agent: echo
      input: {text: "a draft to review"}
      checkpoint_after: {question: "Publish the draft?", options: [continue, retry, abort]}
    - {id: publish, agent: echo, depends_on: [draft], input: {text: published}}
"""


def waiting(server: Server, run_id: str) -> None:
    with api(server) as client:
        for _ in range(600):
            if client.get(f"/api/orchestrations/{run_id}/status").json()["status"] == "checkpoint":
                return
            threading_wait(0.05)
    raise AssertionError(f"run {run_id} never reached its checkpoint")


async def test_approving_a_checkpoint_from_the_inbox(browser: Any, server_factory: Any) -> None:
    server = server_factory()
    run_id = launched(server, CHECKPOINTED, "reviewed")
    waiting(server, run_id)
    page = await browser.new_page()
    await page.goto(f"{server.url}/approvals")
    section = page.locator("section.approval").first
    assert "a draft to review" in await section.locator("pre").text_content()
    await section.locator('form:has(input[value="continue"]) input[name="note"]').fill("ship it")
    async with page.expect_navigation():
        await section.locator("button.continue").click()
    assert "continue:" in await page.locator("#notice").text_content()
    assert ended(server, run_id) == "completed"
    await page.goto(f"{server.url}/runs/{run_id}")
    assert await page.locator('g.node[data-step="publish"]').get_attribute("data-status") == (
        "completed"
    )
