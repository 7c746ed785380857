"""``podium`` with child orchestrations (issue 11): the demo parent, its tree, child events."""

from __future__ import annotations

import json

from tests.acceptance.clitools import EXAMPLES, assert_no_traceback, podium


def test_runs_show_prints_the_tree_of_a_parent_and_its_children(db_url: str) -> None:
    pushed = podium("definitions", "push", str(EXAMPLES / "section-brief.yaml"), db_url=db_url)
    assert pushed.returncode == 0, pushed.stderr
    ran = podium("run", str(EXAMPLES / "team-brief.yaml"), "-p", "topic=tides", db_url=db_url)
    assert_no_traceback(ran)
    assert ran.returncode == 0, ran.stderr
    # the event lines of the parent carry its children's ends
    assert "child started" in ran.stdout
    assert "child completed" in ran.stdout
    [parent] = json.loads(
        podium("runs", "list", "--definition", "team-brief", "--json", db_url=db_url).stdout
    )["items"]
    shown = podium("runs", "show", parent["id"], db_url=db_url)
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(podium("runs", "show", parent["id"], "--json", db_url=db_url).stdout)
    children = detail["children"]
    assert len(children) == 3
    lines = shown.stdout.splitlines()
    start = lines.index("runs:")
    assert lines[start + 1].split()[:3] == ["run", "definition", "step"]
    assert lines[start + 2].split()[0] == parent["id"]
    rows = [line.split() for line in lines[start + 3 : start + 6]]
    assert sorted(r[1] for r in rows) == sorted(c["id"] for c in children)
    assert {r[0] for r in rows} == {"└"}
    assert sorted(r[3] for r in rows) == ["market", "plan", "risks"]
    assert {r[4] for r in rows} == {"completed"}
    assert [t["depth"] for t in detail["tree"]] == [0, 1, 1, 1]
