"""Template placeholders (spec section 2, "Templating")."""

from __future__ import annotations

from typing import Any

import pytest

from podium.domain.templating import (
    Reference,
    TemplateContext,
    find_references,
    resolve,
    template_errors,
)
from podium.errors import InputResolutionError, Issue


def _ctx(readable: frozenset[str] | None = None) -> TemplateContext:
    return TemplateContext(
        parameters={"company": "ACME", "depth": 2, "flag": True, "nothing": None},
        steps={
            "research": {"findings": "lots", "items": [{"title": "A"}, {"title": "B"}]},
            "financials": {"revenue": 1.5, "tags": ["x", "y"]},
        },
        run={"id": "run-1", "organizationSlug": "acme"},
        readable_steps=readable,
    )


# --- find_references -----------------------------------------------------------------------


def test_find_references_walks_nested_values_and_reports_paths() -> None:
    value = {
        "userMessage": "Research {{ parameters.company }} for {{run.id}}",
        "context": {
            "findings": "{{ steps.research.findings }}",
            "list": ["{{ steps.financials }}"],
        },
    }
    found = find_references(value)
    assert [(path, ref.kind, ref.name, ref.path) for path, ref in found] == [
        ("userMessage", "parameters", "company", ()),
        ("userMessage", "run", "id", ()),
        ("context.findings", "steps", "research", ("findings",)),
        ("context.list[0]", "steps", "financials", ()),
    ]


def test_reference_keeps_the_placeholder_text_and_indexed_path() -> None:
    [(path, ref)] = find_references("{{ steps.research.output.items[0].title }}")
    assert path == ""
    assert ref == Reference(
        kind="steps",
        name="research",
        path=("output", "items", 0, "title"),
        text="{{ steps.research.output.items[0].title }}",
    )


def test_whitespace_inside_braces_is_optional() -> None:
    refs = [ref.name for _, ref in find_references("{{parameters.a}} {{  parameters.b  }}")]
    assert refs == ["a", "b"]


def test_dict_keys_are_not_templates() -> None:
    assert find_references({"{{ parameters.a }}": 1}) == []


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{{ }}", "empty placeholder"),
        ("{{ foo.bar }}", "unknown root 'foo'"),
        ("hello {{ parameters.x", "unclosed"),
        ("{{ run.startedAt }}", "unknown run field"),
        ("{{ steps }}", "must name what it reads"),
        ("{{ parameters.x | upper }}", "malformed placeholder"),
        ("{{ steps.a..b }}", "malformed placeholder"),
    ],
)
def test_malformed_placeholders_raise_value_error(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        find_references({"a": [text]})


def test_malformed_placeholder_error_names_the_location() -> None:
    with pytest.raises(ValueError, match=r"^a\[0\]: "):
        find_references({"a": ["{{ foo }}"]})


def test_template_errors_lists_every_malformed_placeholder_with_its_path() -> None:
    issues = template_errors(
        {"a": "{{ foo }} and {{ }}", "b": ["ok {{ run.id }}", "{{ x"]}, "input"
    )
    assert [issue.path for issue in issues] == ["input.a", "input.a", "input.b[1]"]
    assert all(isinstance(issue, Issue) for issue in issues)


# --- resolve ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ steps.research }}", _ctx().steps["research"]),
        ("{{ steps.research.items }}", [{"title": "A"}, {"title": "B"}]),
        ("{{ parameters.depth }}", 2),
        ("{{ parameters.flag }}", True),
        ("{{ parameters.nothing }}", None),
        ("  {{ steps.financials.revenue }}\n", 1.5),
    ],
)
def test_string_that_is_exactly_one_placeholder_takes_the_raw_value(
    template: str, expected: Any
) -> None:
    assert resolve({"v": template}, _ctx()) == {"v": expected}


def test_placeholders_inside_text_are_rendered() -> None:
    value = (
        "{{ parameters.company }}/{{ parameters.depth }}/{{ parameters.flag }}/"
        "{{ parameters.nothing }}/{{ steps.financials }}/{{ steps.financials.tags }}"
    )
    assert resolve(value, _ctx()) == ('ACME/2/true/null/{"revenue":1.5,"tags":["x","y"]}/["x","y"]')


def test_run_fields_resolve() -> None:
    assert resolve("{{ run.id }} in {{ run.organizationSlug }}", _ctx()) == "run-1 in acme"


def test_indexes_including_negative_ones_resolve() -> None:
    assert resolve("{{ steps.research.items[-1].title }}", _ctx()) == "B"


def test_resolve_returns_a_new_structure_and_leaves_input_and_context_alone() -> None:
    ctx = _ctx()
    value = {"keep": 1, "{{ parameters.company }}": "{{ steps.research.items }}", "l": [None]}
    resolved = resolve(value, ctx)
    assert resolved == {
        "keep": 1,
        "{{ parameters.company }}": ctx.steps["research"]["items"],
        "l": [None],
    }
    resolved["{{ parameters.company }}"].append("mutated")
    assert ctx.steps["research"]["items"] == [{"title": "A"}, {"title": "B"}]
    assert value["{{ parameters.company }}"] == "{{ steps.research.items }}"


def test_missing_key_raises_naming_placeholder_and_location() -> None:
    ctx = TemplateContext(parameters={}, steps={"research": {"other": 1}}, run={})
    value = {"context": {"findings": "{{ steps.research.findings }}"}}
    with pytest.raises(InputResolutionError) as caught:
        resolve(value, ctx)
    assert str(caught.value) == (
        "input.context.findings: {{ steps.research.findings }} has no value "
        "(key 'findings' missing in output of step 'research')"
    )
    assert caught.value.code == "input_resolution_error"


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{{ parameters.unknown }}", "parameter 'unknown' was not given"),
        ("x {{ steps.draft }} y", "step 'draft' has no output"),
        (
            "{{ steps.research.items[5] }}",
            "index [5] out of range in steps.research.items (length 2)",
        ),
        ("{{ steps.research.items[0].body }}", "key 'body' missing in steps.research.items[0]"),
        ("{{ steps.research.findings.x }}", "cannot take key 'x' of a string"),
    ],
)
def test_missing_values_are_errors_never_empty_strings(template: str, reason: str) -> None:
    with pytest.raises(InputResolutionError) as caught:
        resolve({"k": template}, _ctx(), path="input")
    assert str(caught.value).startswith("input.k: {{")
    assert f"has no value ({reason}" in str(caught.value)


def test_reading_a_step_outside_readable_steps_is_rejected_even_if_it_has_output() -> None:
    ctx = _ctx(readable=frozenset({"research"}))
    assert resolve("{{ steps.research.findings }}", ctx) == "lots"
    with pytest.raises(InputResolutionError, match="step 'financials' is not a dependency"):
        resolve("{{ steps.financials }}", ctx)


def test_unset_run_field_is_an_error() -> None:
    ctx = TemplateContext(parameters={}, steps={}, run={"id": "r"})
    with pytest.raises(InputResolutionError, match="run field 'organizationSlug' is not set"):
        resolve("{{ run.organizationSlug }}", ctx)


def test_malformed_placeholder_at_resolution_raises_input_resolution_error() -> None:
    with pytest.raises(InputResolutionError, match=r"input\.a: .*unknown root"):
        resolve({"a": "{{ nope }}"}, _ctx())


def test_custom_path_names_the_location() -> None:
    with pytest.raises(InputResolutionError, match=r"^checkpoint_after\.question: "):
        resolve("Publish {{ steps.x }}?", _ctx(), path="checkpoint_after.question")
