"""``podium agents`` on the local database and over ``--url`` (a real server on loopback), on
SQLite and PostgreSQL: every subcommand does the same in both places, prints the same, and
bad input is one ``error:`` line with a non-zero exit."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from podium.agents.a2a.demo import demo_server
from podium.cli.agents import demo_checks, register_demo_agents
from podium.cli.place import Place
from podium.storage.store import SqlStore
from tests.cli.conftest import Where, serving

UPPERCASE = "podium.agents.demo:uppercase"


@pytest.fixture(scope="module")
def demo() -> Iterator[dict[str, str]]:
    """The demo A2A agents on a free loopback port."""
    server = demo_server(port=0).start()
    try:
        yield server.urls
    finally:
        server.stop()


def test_add_show_disable_enable_and_list(where: Where) -> None:
    added = where.json(
        "agents", "add", "shouter", "--target", UPPERCASE, "--concurrency", "2", "--timeout", "30"
    )
    assert (added["organizationSlug"], added["kind"], added["target"]) == (
        "acme",
        "python",
        UPPERCASE,
    )
    assert (added["concurrencyLimit"], added["timeoutSeconds"], added["active"]) == (2, 30, True)

    code, shown, _ = where.run("agents", "show", "shouter")
    assert code == 0
    assert f"target        {UPPERCASE}" in shown
    assert "concurrency   2" in shown

    assert where.json("agents", "disable", "shouter")["active"] is False
    assert where.store.get_agent("acme", "shouter").active is False  # the database's registry
    assert where.run("agents", "enable", "shouter")[:2] == (0, "enabled agent shouter of acme\n")
    assert where.run("agents", "disable", "shouter")[:2] == (0, "disabled agent shouter of acme\n")

    listed = where.json("agents", "list")["items"]
    rows = {(a["slug"], a["organizationSlug"], a["active"]) for a in listed}
    assert {("shouter", "acme", False), ("echo", "global", True)} <= rows
    code, table, _ = where.run("agents", "list")
    assert code == 0
    assert "shouter" in table
    assert "global (built-in)" in table

    code, out, _ = where.run("agents", "add", "quiet", "--target", UPPERCASE, "--inactive")
    assert (code, out) == (0, "registered python agent quiet in acme\n")
    assert where.store.get_agent("acme", "quiet").active is False


def test_an_a2a_agent_is_registered_with_its_card_and_refreshed(
    where: Where, demo: dict[str, str]
) -> None:
    code, out, err = where.run("agents", "add", "summarizer", demo["summarizer"])
    assert (code, out) == (0, "registered a2a agent summarizer in acme\n"), err
    first = where.store.get_agent("acme", "summarizer").card_fetched_at
    refreshed = where.json("agents", "refresh", "summarizer")
    assert refreshed["url"] == demo["summarizer"]
    assert refreshed["card"]["skills"][0]["id"] == "summarize"
    assert where.store.get_agent("acme", "summarizer").card_fetched_at >= first
    code, shown, _ = where.run("agents", "show", "summarizer")
    assert code == 0
    assert "skill         summarize:" in shown


def test_the_demo_agents_register_and_register_again(where: Where, demo: dict[str, str]) -> None:
    """``podium agents demo --register``, in the local database or at ``--url``."""
    place = Place(url=where.url, api_key=where.api_key)
    with place.backend(migrate=True, agent_checks=demo_checks()) as backend:
        first = register_demo_agents(backend, demo)
        where.store.update_agent("acme", "translator", url="http://127.0.0.1:9/gone")
        again = register_demo_agents(backend, demo)  # points them at the URLs again
    assert sorted(a.slug for a in first) == sorted(demo)
    assert [a.slug for a in again] == [a.slug for a in first]
    assert {a.organizationSlug for a in again} == {"acme"}
    assert where.store.get_agent("acme", "translator").url == demo["translator"]


def test_bad_input_is_one_line_and_a_non_zero_exit(where: Where) -> None:
    assert where.error("agents", "show", "ghost") == (
        1,
        "error: agent ghost not found in organization acme or global",
    )
    code, line = where.error("agents", "add", "both", "http://x", "--target", "a:b")
    assert code == 2
    assert "exactly one of AGENT_URL and --target" in line
    code, line = where.error("agents", "add", "odd", "--target", "not a target")
    assert code == 2
    assert "'--target'" in line
    assert "module:function" in line
    code, line = where.error("agents", "add", "-odd-", "--target", UPPERCASE)
    assert code == 2
    code, line = where.error("agents", "add", "private", "http://10.0.0.1:9/agent")
    assert code == 2, line
    assert "10.0.0.1" in line
    code, line = where.error("agents", "add", "missing", "--target", "no_such_module:run")
    assert code == 2
    assert "no_such_module" in line
    code, line = where.error("agents", "refresh", "echo")
    assert code == 1
    assert "built-in" in line
    code, line = where.error("agents", "add", "echo2", "--target", UPPERCASE, "--concurrency", "0")
    assert code == 2
    assert where.store.list_agents("acme") == []  # nothing was registered


def test_org_names_the_local_organization_and_is_refused_with_url(where: Where) -> None:
    if where.remote:
        code, line = where.error("agents", "list", "--org", "globex")
        assert code == 2
        assert "--org" in line
        assert "API key" in line
        return
    added = where.json("agents", "add", "tool", "--target", UPPERCASE, "--org", "globex")
    assert added["organizationSlug"] == "globex"
    assert where.json("agents", "show", "tool", "--org", "globex")["organizationSlug"] == "globex"
    assert where.error("agents", "show", "tool")[0] == 1  # acme (PODIUM_ORG) has none


def test_over_http_the_key_decides_what_may_be_done(remote: Where) -> None:
    _, viewer = remote.store.create_key(organization="acme", role="viewer", name="viewer@acme")
    admin, remote.api_key = remote.api_key, viewer
    assert remote.json("agents", "list")["items"]  # a viewer reads
    code, line = remote.error("agents", "add", "shouter", "--target", UPPERCASE)
    assert code == 1
    assert "needs the admin role" in line
    remote.api_key = admin
    # the local operator may name any module; an API caller only the allowed ones
    code, line = remote.error("agents", "add", "shell", "--target", "os:system")
    assert code == 2
    assert "PODIUM_PYTHON_AGENT_MODULES" in line
    remote.api_key = "pod_0000_not-a-key"
    code, line = remote.error("agents", "list")
    assert code == 1
    assert "not valid" in line
    remote.url = "http://127.0.0.1:9"
    code, line = remote.error("agents", "list")
    assert (code, line) == (
        1,
        "error: cannot reach the Podium server at http://127.0.0.1:9: connection refused",
    )


def test_agents_print_the_same_over_http_as_locally(
    db_url: str, store: SqlStore, capsys: pytest.CaptureFixture[str]
) -> None:
    _, key = store.create_key(organization="acme", role="admin", name="admin@acme")
    local = Where(store, capsys=capsys)
    assert local.run("agents", "add", "shouter", "--target", UPPERCASE)[0] == 0
    with serving(db_url) as url:
        remote = Where(store, url=url, api_key=key, capsys=capsys)
        for args in (
            ("agents", "list"),
            ("agents", "list", "--json"),
            ("agents", "show", "shouter"),
            ("agents", "show", "shouter", "--json"),
            ("agents", "show", "echo"),
            ("agents", "show", "ghost"),
        ):
            assert remote.run(*args) == local.run(*args), args
