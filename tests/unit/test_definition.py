"""The definition format, its validation and launch parameters (spec section 2)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from podium.domain.definition import (
    DEFAULT_LIMITS,
    CacheSettings,
    Definition,
    DefinitionLimits,
    RetryPolicy,
    apply_parameters,
    parse_definition,
    semver_key,
)
from podium.errors import DefinitionInvalid, ParametersInvalid

SPEC_EXAMPLE = """
metadata:
  name: market-brief            # [a-z0-9-], unique per organization
  displayName: Market brief
  version: 1.2.0
  description: Research a company and draft a brief
  owner: research-lead
orchestration:
  parameters:
    - { name: company, type: string, required: true }
    - { name: depth, type: integer, default: 2, enum: [1, 2, 3] }
  execution:
    concurrency: { maxParallelSteps: 4 }
    caching: { enabled: true, ttlSeconds: 3600 }
    timeoutSeconds: 3600
  error_handling:
    on_step_failure: { maxAttempts: 3, strategy: exponential, initialDelayMs: 1000,
                       backoffMultiplier: 2, maxDelayMs: 60000 }
  steps:
    - id: research
      agent: web-researcher
      input:
        userMessage: "Research {{ parameters.company }} at depth {{ parameters.depth }}"
      output_mapping: { findings: "$.artifacts[0].text" }
      cache: { enabled: true, ttlSeconds: 86400, exclude: [requestedAt] }
      timeoutSeconds: 300
    - id: financials
      agent: finance-analyst
      input: { userMessage: "Key financials for {{ parameters.company }}" }
    - id: draft
      agent: writer
      depends_on: [research, financials]
      input:
        userMessage: "Write a brief"
        context: { findings: "{{ steps.research.findings }}", numbers: "{{ steps.financials }}" }
      checkpoint_after:
        question: "Publish this draft?"
        options: [continue, retry, abort]
        timeoutSeconds: 86400
        onTimeout: abort
    - id: publish
      type: orchestration
      depends_on: [draft]
      orchestration:
        { name: publish-pipeline, version: "^1", parameters: { text: "{{ steps.draft }}" } }
"""


def _doc(steps: list[dict[str, Any]] | None = None, **orchestration: Any) -> dict[str, Any]:
    """A minimal valid document, with the given steps and orchestration fields."""
    return {
        "metadata": {"name": "demo", "version": "1.0.0"},
        "orchestration": {
            "steps": steps if steps is not None else [{"id": "a", "agent": "worker"}],
            **orchestration,
        },
    }


def _problems(source: Any, limits: DefinitionLimits = DEFAULT_LIMITS) -> dict[str, list[str]]:
    """Parse ``source`` expecting failure; return messages grouped by path."""
    with pytest.raises(DefinitionInvalid) as caught:
        parse_definition(source, limits)
    grouped: dict[str, list[str]] = {}
    for issue in caught.value.issues:
        grouped.setdefault(issue.path, []).append(issue.message)
    return grouped


# --- the happy path -------------------------------------------------------------------------


def test_spec_example_parses_with_every_field() -> None:
    definition = parse_definition(SPEC_EXAMPLE)
    assert definition.metadata.name == "market-brief"
    assert definition.metadata.displayName == "Market brief"
    assert definition.orchestration.execution.concurrency.maxParallelSteps == 4
    assert definition.orchestration.execution.timeoutSeconds == 3600
    assert definition.step("research").output_mapping == {"findings": "$.artifacts[0].text"}
    draft = definition.step("draft")
    assert draft.checkpoint_after is not None
    assert draft.checkpoint_after.onTimeout == "abort"
    publish = definition.step("publish")
    assert publish.type == "orchestration"
    assert publish.orchestration is not None
    assert publish.orchestration.version == "^1"


def test_same_definition_parses_from_text_bytes_json_and_mapping() -> None:
    from_yaml = parse_definition(SPEC_EXAMPLE)
    as_json = json.dumps(from_yaml.to_document())
    assert parse_definition(as_json) == from_yaml
    assert parse_definition(as_json.encode()) == from_yaml
    assert parse_definition(SPEC_EXAMPLE.encode()) == from_yaml


def test_to_document_round_trips_and_is_json() -> None:
    definition = parse_definition(SPEC_EXAMPLE)
    document = definition.to_document()
    assert json.loads(json.dumps(document)) == document
    again = parse_definition(document)
    assert again == definition
    assert again.to_document() == document


def test_parameter_without_default_has_none_after_round_trip() -> None:
    definition = parse_definition(SPEC_EXAMPLE)
    company, depth = definition.orchestration.parameters
    assert not company.has_default
    assert depth.has_default
    assert depth.default == 2
    again = parse_definition(definition.to_document())
    assert not again.orchestration.parameters[0].has_default


def test_graph_helpers_follow_definition_order() -> None:
    definition = parse_definition(SPEC_EXAMPLE)
    assert definition.step_ids == ["research", "financials", "draft", "publish"]
    assert definition.roots() == ["research", "financials"]
    assert definition.dependents() == {
        "research": ["draft"],
        "financials": ["draft"],
        "draft": ["publish"],
        "publish": [],
    }
    assert definition.upstream("publish") == {"draft", "research", "financials"}
    assert definition.upstream("research") == set()
    assert definition == parse_definition(SPEC_EXAMPLE)  # cached lookups do not affect equality


def test_unknown_step_lookup_raises_key_error() -> None:
    with pytest.raises(KeyError, match="nope"):
        parse_definition(SPEC_EXAMPLE).step("nope")


def test_step_overrides_retry_and_cache_else_defaults_apply() -> None:
    document = _doc(
        steps=[
            {"id": "a", "agent": "w", "retry": {"maxAttempts": 1}, "cache": {"enabled": False}},
            {"id": "b", "agent": "w"},
        ],
        execution={"caching": {"enabled": True, "ttlSeconds": 60}},
        error_handling={"on_step_failure": {"maxAttempts": 5, "strategy": "fixed"}},
    )
    definition = parse_definition(document)
    assert definition.retry_policy("a").maxAttempts == 1
    assert definition.retry_policy("b") == RetryPolicy(maxAttempts=5, strategy="fixed")
    # a step's cache overrides the default field by field (issue 12)
    assert definition.cache_settings("a") == CacheSettings(enabled=False, ttlSeconds=60)
    assert definition.cache_settings("b") == CacheSettings(enabled=True, ttlSeconds=60)


def test_defaults_fill_omitted_sections() -> None:
    definition = parse_definition(_doc())
    orchestration = definition.orchestration
    assert orchestration.execution.concurrency.maxParallelSteps == 10
    assert orchestration.execution.caching.enabled is False
    assert orchestration.error_handling.on_step_failure == RetryPolicy()
    step = definition.step("a")
    assert step.type == "agent"
    assert step.input == {}
    assert step.depends_on == []


def test_models_are_frozen() -> None:
    definition = parse_definition(_doc())
    with pytest.raises(ValueError, match="frozen"):
        definition.metadata.name = "other"  # type: ignore[misc]


# --- reporting ------------------------------------------------------------------------------


def test_every_problem_is_reported_at_once_with_exact_paths() -> None:
    document = {
        "metadata": {"name": "Bad Name", "version": "1.0"},
        "orchestration": {
            "execution": {"concurrency": {"maxParallelSteps": 0}},
            "steps": [
                {"id": "a", "agent": "w"},
                {"id": "b", "agent": "w", "depends_on": ["a", "ghost"]},
                {"id": "c", "agent": "w", "depends_on": ["c"], "timeoutSeconds": -1},
                {"id": "d"},
            ],
        },
    }
    with pytest.raises(DefinitionInvalid) as caught:
        parse_definition(document)
    paths = [issue.path for issue in caught.value.issues]
    assert paths == [
        "metadata.name",
        "metadata.version",
        "orchestration.execution.concurrency.maxParallelSteps",
        "orchestration.steps[1].depends_on[1]",
        "orchestration.steps[2].depends_on[0]",
        "orchestration.steps[2].timeoutSeconds",
        "orchestration.steps[3].agent",
    ]
    assert caught.value.message == "definition Bad Name is invalid: 7 problem(s)"


def test_message_uses_question_mark_when_name_is_unknown() -> None:
    with pytest.raises(DefinitionInvalid) as caught:
        parse_definition({"orchestration": {"steps": [{"id": "a", "agent": "w"}]}})
    assert caught.value.message == "definition ? is invalid: 1 problem(s)"
    assert caught.value.issues[0].path == "metadata"
    assert caught.value.issues[0].message == "required field is missing"


def test_unknown_fields_are_rejected_with_a_suggestion() -> None:
    problems = _problems(_doc(steps=[{"id": "a", "agent": "w", "depend_on": ["b"]}]))
    assert problems == {
        "orchestration.steps[0].depend_on": [
            "unknown field 'depend_on' (did you mean 'depends_on'?)"
        ]
    }


def test_yaml_syntax_error_is_one_issue_with_line_and_column() -> None:
    problems = _problems("metadata:\n  name: x\n  version: [1.0.0\n")
    assert list(problems) == [""]
    assert "YAML syntax error at line" in problems[""][0]
    assert "column" in problems[""][0]


def test_duplicate_yaml_keys_are_rejected() -> None:
    problems = _problems("metadata: {name: a, version: 1.0.0}\nmetadata: {name: b}\n")
    assert "duplicate key 'metadata'" in problems[""][0]


@pytest.mark.parametrize("source", ["- a\n- b\n", "just text", "", "42"])
def test_document_that_is_not_a_mapping_is_one_issue(source: str) -> None:
    problems = _problems(source)
    assert list(problems) == [""]
    assert "must be a mapping" in problems[""][0]


def test_yaml_words_and_dates_stay_strings() -> None:
    document = (
        "metadata: {name: a, version: 1.0.0}\n"
        "orchestration:\n"
        "  steps:\n"
        "    - {id: a, agent: w, input: {answer: no, country: NO, on: 2024-01-02, ok: true}}\n"
    )
    step = parse_definition(document).step("a")
    assert step.input == {"answer": "no", "country": "NO", "on": "2024-01-02", "ok": True}


def test_non_json_values_in_input_are_rejected() -> None:
    problems = _problems(_doc(steps=[{"id": "a", "agent": "w", "input": {"x": {1: "a"}}}]))
    assert problems == {"orchestration.steps[0].input.x": ["key 1 must be a string"]}


# --- steps and the graph ---------------------------------------------------------------------


def test_cycle_is_named_once() -> None:
    steps: list[dict[str, Any]] = [
        {"id": "a", "agent": "w", "depends_on": ["c"]},
        {"id": "b", "agent": "w", "depends_on": ["a"]},
        {"id": "c", "agent": "w", "depends_on": ["b"]},
    ]
    problems = _problems(_doc(steps=steps))
    assert problems == {
        "orchestration.steps[0].depends_on": [
            "cycle: a -> c -> b -> a (each step depends on the next)"
        ]
    }


def test_each_distinct_cycle_is_reported() -> None:
    steps: list[dict[str, Any]] = [
        {"id": "a", "agent": "w", "depends_on": ["b"]},
        {"id": "b", "agent": "w", "depends_on": ["a"]},
        {"id": "x", "agent": "w", "depends_on": ["y"]},
        {"id": "y", "agent": "w", "depends_on": ["x"]},
        {"id": "z", "agent": "w", "depends_on": ["a", "x"]},
    ]
    messages = [m for ms in _problems(_doc(steps=steps)).values() for m in ms]
    assert sorted(messages) == [
        "cycle: a -> b -> a (each step depends on the next)",
        "cycle: x -> y -> x (each step depends on the next)",
    ]


def test_self_dependency_is_rejected_without_a_cycle_report() -> None:
    problems = _problems(_doc(steps=[{"id": "a", "agent": "w", "depends_on": ["a"]}]))
    assert problems == {"orchestration.steps[0].depends_on[0]": ["step 'a' depends on itself"]}


def test_unknown_dependency_is_rejected_with_a_suggestion() -> None:
    steps: list[dict[str, Any]] = [
        {"id": "research", "agent": "w"},
        {"id": "b", "agent": "w", "depends_on": ["reserch"]},
    ]
    problems = _problems(_doc(steps=steps))
    assert problems == {
        "orchestration.steps[1].depends_on[0]": [
            "unknown step 'reserch' (did you mean 'research'?)"
        ]
    }


def test_duplicate_step_ids_are_rejected() -> None:
    steps: list[dict[str, Any]] = [{"id": "a", "agent": "w"}, {"id": "a", "agent": "w"}]
    problems = _problems(_doc(steps=steps))
    assert problems == {
        "orchestration.steps[1].id": [
            "duplicate step id 'a' (first used by orchestration.steps[0])"
        ]
    }


@pytest.mark.parametrize("step_id", ["Research", "a b", "a.b", ""])
def test_step_ids_must_match_the_pattern(step_id: str) -> None:
    problems = _problems(_doc(steps=[{"id": step_id, "agent": "w"}]))
    assert list(problems) == ["orchestration.steps[0].id"]
    assert "[a-z0-9_-]+" in problems["orchestration.steps[0].id"][0]


def test_zero_max_parallel_steps_is_rejected_clearly() -> None:
    problems = _problems(_doc(execution={"concurrency": {"maxParallelSteps": 0}}))
    assert problems == {
        "orchestration.execution.concurrency.maxParallelSteps": [
            "maxParallelSteps must be at least 1, got 0 (a run with no step slots could never "
            "make progress)"
        ]
    }


def test_agent_and_orchestration_steps_must_name_their_target() -> None:
    steps: list[dict[str, Any]] = [
        {"id": "a"},
        {"id": "b", "type": "orchestration"},
        {"id": "c", "agent": "w", "orchestration": {"name": "child"}},
    ]
    problems = _problems(_doc(steps=steps))
    assert set(problems) == {
        "orchestration.steps[0].agent",
        "orchestration.steps[1].orchestration",
        "orchestration.steps[2].orchestration",
    }


def test_at_least_one_step_is_required() -> None:
    problems = _problems(_doc(steps=[]))
    assert problems == {"orchestration.steps": ["an orchestration needs at least one step"]}


def test_output_mapping_selectors_are_validated() -> None:
    step = {"id": "a", "agent": "w", "output_mapping": {"good": "$.x[0]", "bad": "x[0]"}}
    problems = _problems(_doc(steps=[step]))
    assert list(problems) == ["orchestration.steps[0].output_mapping.bad"]
    assert "must start with '$'" in problems["orchestration.steps[0].output_mapping.bad"][0]


@pytest.mark.parametrize("version", ["1.0", "v1.0.0", "01.0.0", "1.0.0+build"])
def test_metadata_version_must_be_semver(version: str) -> None:
    document = _doc()
    document["metadata"]["version"] = version
    assert list(_problems(document)) == ["metadata.version"]


def test_prerelease_versions_are_accepted_and_ordered() -> None:
    document = _doc()
    document["metadata"]["version"] = "2.0.0-rc.1"
    assert parse_definition(document).metadata.version == "2.0.0-rc.1"
    versions = ["1.10.0", "1.2.0", "2.0.0-rc.1", "2.0.0", "2.0.0-alpha", "2.0.0-rc.10"]
    assert sorted(versions, key=semver_key) == [
        "1.2.0",
        "1.10.0",
        "2.0.0-alpha",
        "2.0.0-rc.1",
        "2.0.0-rc.10",
        "2.0.0",
    ]


def test_unquoted_yaml_float_version_gets_a_hint() -> None:
    problems = _problems(
        "metadata: {name: a, version: 1.2}\norchestration: {steps: [{id: a, agent: w}]}"
    )
    assert problems["metadata.version"] == [
        "Input should be a valid string, got the number 1.2; quote it in YAML"
    ]


# --- parameters in the definition -----------------------------------------------------------


def test_parameter_defaults_and_enums_type_check() -> None:
    parameters = [
        {"name": "n", "type": "integer", "default": True},
        {"name": "f", "type": "number", "default": 3},
        {"name": "e", "type": "integer", "enum": [1, "2", 3.5]},
        {"name": "d", "type": "string", "default": "z", "enum": ["x", "y"]},
        {"name": "o", "type": "object", "default": {"k": [1]}},
        {"name": "empty", "enum": []},
    ]
    problems = _problems(_doc(parameters=parameters))
    assert problems == {
        "orchestration.parameters[0].default": [
            "default true is not an integer (the parameter's type is integer)"
        ],
        "orchestration.parameters[2].enum[1]": [
            'enum value "2" is not an integer (the parameter\'s type is integer)'
        ],
        "orchestration.parameters[2].enum[2]": [
            "enum value 3.5 is not an integer (the parameter's type is integer)"
        ],
        "orchestration.parameters[3].default": [
            'default "z" is not one of the enum values ["x", "y"]'
        ],
        "orchestration.parameters[5].enum": ["enum must list at least one value"],
    }


def test_parameter_names_are_unique_and_identifiers() -> None:
    parameters = [{"name": "x"}, {"name": "x"}, {"name": "bad-name"}]
    problems = _problems(_doc(parameters=parameters))
    assert set(problems) == {"orchestration.parameters[1].name", "orchestration.parameters[2].name"}
    assert "duplicate parameter name 'x'" in problems["orchestration.parameters[1].name"][0]


# --- templates in the definition ------------------------------------------------------------


def test_templates_may_read_declared_parameters_run_fields_and_upstream_steps() -> None:
    steps: list[dict[str, Any]] = [
        {"id": "a", "agent": "w", "input": "{{ parameters.p }} {{ run.id }}"},
        {"id": "b", "agent": "w", "depends_on": ["a"]},
        {
            "id": "c",
            "agent": "w",
            "depends_on": ["b"],
            "input": {"via": "{{ steps.a.x[0] }}", "org": "{{ run.organizationSlug }}"},
        },
    ]
    parse_definition(_doc(steps=steps, parameters=[{"name": "p"}]))


def test_reading_a_step_that_is_not_a_dependency_is_rejected() -> None:
    steps: list[dict[str, Any]] = [
        {"id": "a", "agent": "w"},
        {"id": "b", "agent": "w", "input": {"ctx": ["{{ steps.a.out }}"]}},
    ]
    problems = _problems(_doc(steps=steps))
    assert problems == {
        "orchestration.steps[1].input.ctx[0]": [
            "step 'b' reads steps.a but does not depend on it (add 'a' to its depends_on)"
        ]
    }


def test_reading_an_undeclared_parameter_or_missing_step_is_rejected() -> None:
    steps: list[dict[str, Any]] = [
        {"id": "a", "agent": "w", "input": "{{ parameters.compny }} {{ steps.ghost }}"}
    ]
    problems = _problems(_doc(steps=steps, parameters=[{"name": "company"}]))
    assert problems == {
        "orchestration.steps[0].input": [
            "step 'a' reads parameters.compny but no parameter 'compny' is declared "
            "(did you mean 'company'?)",
            "step 'a' reads steps.ghost but no step 'ghost' exists",
        ]
    }


def test_malformed_placeholders_are_reported_with_their_path() -> None:
    steps: list[dict[str, Any]] = [
        {"id": "a", "agent": "w", "input": {"q": "{{ foo.bar }}", "r": "{{ steps.a"}}
    ]
    problems = _problems(_doc(steps=steps))
    assert set(problems) == {"orchestration.steps[0].input.q", "orchestration.steps[0].input.r"}
    assert "unknown root 'foo'" in problems["orchestration.steps[0].input.q"][0]
    assert "unclosed" in problems["orchestration.steps[0].input.r"][0]


def test_child_parameters_and_checkpoint_question_are_checked_too() -> None:
    steps: list[dict[str, Any]] = [
        {"id": "a", "agent": "w"},
        {
            "id": "b",
            "type": "orchestration",
            "orchestration": {"name": "child", "parameters": {"text": "{{ steps.a }}"}},
            "checkpoint_after": {"question": "Ship {{ steps.a.title }}?"},
        },
    ]
    problems = _problems(_doc(steps=steps))
    assert set(problems) == {
        "orchestration.steps[1].orchestration.parameters.text",
        "orchestration.steps[1].checkpoint_after.question",
    }


def test_checkpoint_question_may_read_its_own_steps_output_but_input_may_not() -> None:
    ok = [
        {"id": "a", "agent": "w", "checkpoint_after": {"question": "Publish {{ steps.a.title }}?"}}
    ]
    parse_definition(_doc(steps=ok))
    bad: list[dict[str, Any]] = [{"id": "a", "agent": "w", "input": "{{ steps.a }}"}]
    assert list(_problems(_doc(steps=bad))) == ["orchestration.steps[0].input"]


# --- limits ---------------------------------------------------------------------------------


def test_too_many_steps_names_the_limit() -> None:
    steps: list[dict[str, Any]] = [{"id": f"s{i}", "agent": "w"} for i in range(4)]
    problems = _problems(_doc(steps=steps), DefinitionLimits(max_steps=3))
    assert problems == {
        "orchestration.steps": ["4 steps; the limit is 3 steps per definition (max_steps)"]
    }


def test_too_many_parameters_and_dependencies_name_their_limits() -> None:
    steps: list[dict[str, Any]] = [{"id": "a", "agent": "w"}, {"id": "b", "agent": "w"}]
    steps.append({"id": "c", "agent": "w", "depends_on": ["a", "b"]})
    parameters = [{"name": "p"}, {"name": "q"}]
    limits = DefinitionLimits(max_parameters=1, max_depends_on=1)
    problems = _problems(_doc(steps=steps, parameters=parameters), limits)
    assert problems == {
        "orchestration.parameters": ["2 parameters; the limit is 1 (max_parameters)"],
        "orchestration.steps[2].depends_on": [
            "2 dependencies; the limit is 1 per step (max_depends_on)"
        ],
    }


def test_oversized_document_is_rejected_before_parsing() -> None:
    limits = DefinitionLimits(max_document_bytes=100)
    text = "metadata: {name: a, version: 1.0.0}\n# " + "x" * 200
    problems = _problems(text, limits)
    assert problems == {
        "": [f"document is {len(text)} bytes; the limit is 100 (max_document_bytes)"]
    }


def test_oversized_mapping_is_measured_as_json() -> None:
    document = _doc(steps=[{"id": "a", "agent": "w", "input": {"blob": "x" * 500}}])
    problems = _problems(document, DefinitionLimits(max_document_bytes=300))
    assert "max_document_bytes" in problems[""][0]


def test_yaml_alias_expansion_counts_against_the_size_limit() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for level in "bcdefg":
        previous = chr(ord(level) - 1)
        bomb += f"{level}: &{level} [" + ", ".join([f"*{previous}"] * 10) + "]\n"
    problems = _problems(bomb)
    assert "document expands to more than" in problems[""][0]


def test_deeply_nested_document_is_rejected() -> None:
    nested: Any = "x"
    for _ in range(DEFAULT_LIMITS.max_nesting_depth + 5):
        nested = [nested]
    problems = _problems(_doc(steps=[{"id": "a", "agent": "w", "input": nested}]))
    [(path, messages)] = problems.items()
    assert path.startswith("orchestration.steps[0].input[0][0]"), path  # L3: names the path
    assert "max_nesting_depth" in messages[0]


def test_yaml_aliases_are_measured_in_bytes_after_expansion() -> None:
    """L3: few values, each large: the expanded document is over the byte limit."""
    bomb = f"a: &a ['{'x' * 1000}']\n"
    for level in "bcd":
        previous = chr(ord(level) - 1)
        bomb += f"{level}: &{level} [" + ", ".join([f"*{previous}"] * 11) + "]\n"
    assert len(bomb) < 2000
    problems = _problems(bomb)
    assert "document expands to more than" in problems[""][0]


# --- retry policy ---------------------------------------------------------------------------


def test_exponential_delays_grow_by_the_multiplier_and_are_capped() -> None:
    policy = RetryPolicy(initialDelayMs=1000, backoffMultiplier=2, maxDelayMs=5000)
    assert [policy.delay_ms(n) for n in range(1, 6)] == [1000, 2000, 4000, 5000, 5000]
    assert policy.delay_ms(10_000) == 5000  # no overflow for huge attempt numbers


def test_linear_and_fixed_delays() -> None:
    linear = RetryPolicy(strategy="linear", initialDelayMs=500, maxDelayMs=1200)
    assert [linear.delay_ms(n) for n in range(1, 5)] == [500, 1000, 1200, 1200]
    fixed = RetryPolicy(strategy="fixed", initialDelayMs=700)
    assert [fixed.delay_ms(n) for n in range(1, 4)] == [700, 700, 700]


def test_jitter_scales_within_bounds_deterministically_and_respects_the_cap() -> None:
    policy = RetryPolicy(strategy="fixed", initialDelayMs=1000, jitter=0.2)
    assert policy.delay_ms(1, rand=0.0) == 800
    assert policy.delay_ms(1, rand=0.5) == 1000
    assert policy.delay_ms(1, rand=0.999) == 1200
    capped = RetryPolicy(strategy="fixed", initialDelayMs=1000, maxDelayMs=1000, jitter=0.5)
    assert capped.delay_ms(1, rand=0.99) == 1000
    assert capped.delay_ms(1, rand=0.0) == 500


def test_delay_rejects_attempt_numbers_below_one() -> None:
    with pytest.raises(ValueError, match="failed_attempt"):
        RetryPolicy().delay_ms(0)


def test_retry_policy_ranges_are_validated() -> None:
    policy = {"maxAttempts": 0, "backoffMultiplier": 0.5, "jitter": 2, "strategy": "random"}
    problems = _problems(_doc(error_handling={"on_step_failure": policy}))
    base = "orchestration.error_handling.on_step_failure"
    assert set(problems) == {
        f"{base}.maxAttempts",
        f"{base}.backoffMultiplier",
        f"{base}.jitter",
        f"{base}.strategy",
    }


# --- launch parameters ----------------------------------------------------------------------


def _with_parameters(parameters: list[dict[str, Any]]) -> Definition:
    return parse_definition(_doc(parameters=parameters))


def test_defaults_are_applied_and_optional_parameters_stay_absent() -> None:
    definition = parse_definition(SPEC_EXAMPLE)
    assert apply_parameters(definition, {"company": "ACME"}) == {"company": "ACME", "depth": 2}
    optional = _with_parameters([{"name": "note"}])
    assert apply_parameters(optional, {}) == {}


def test_required_parameter_with_default_is_satisfied_by_the_default() -> None:
    definition = _with_parameters([{"name": "x", "required": True, "default": "d"}])
    assert apply_parameters(definition, {}) == {"x": "d"}


def test_all_parameter_problems_are_reported_at_once() -> None:
    definition = _with_parameters(
        [
            {"name": "company", "required": True},
            {"name": "depth", "type": "integer", "enum": [1, 2, 3]},
            {"name": "ratio", "type": "number"},
            {"name": "flag", "type": "boolean"},
            {"name": "size", "type": "integer"},
        ]
    )
    given = {"depth": 5, "ratio": True, "flag": "yes", "size": 2.5, "colour": "red"}
    with pytest.raises(ParametersInvalid) as caught:
        apply_parameters(definition, given)
    assert caught.value.message == "parameters are invalid: 6 problem(s)"
    assert {issue.path: issue.message for issue in caught.value.issues} == {
        "parameters.colour": (
            "unknown parameter 'colour'; declared: company, depth, ratio, flag, size"
        ),
        "parameters.company": "required parameter 'company' is missing",
        "parameters.depth": "5 is not one of the allowed values [1, 2, 3]",
        "parameters.ratio": "expected a number, got a boolean (true)",
        "parameters.flag": 'expected a boolean, got a string ("yes")',
        "parameters.size": "expected an integer, got a number (2.5)",
    }


def test_integer_is_a_number_but_boolean_is_not_an_integer() -> None:
    definition = _with_parameters(
        [{"name": "n", "type": "number"}, {"name": "i", "type": "integer"}]
    )
    assert apply_parameters(definition, {"n": 3, "i": 4}) == {"n": 3, "i": 4}
    with pytest.raises(ParametersInvalid):
        apply_parameters(definition, {"i": True})


def test_enum_membership_distinguishes_true_from_one() -> None:
    definition = _with_parameters([{"name": "x", "type": "number", "enum": [1, 2]}])
    assert apply_parameters(definition, {"x": 1.0}) == {"x": 1.0}
    with pytest.raises(ParametersInvalid):
        apply_parameters(definition, {"x": True})


def test_applied_defaults_are_copies() -> None:
    definition = _with_parameters([{"name": "o", "type": "object", "default": {"k": [1]}}])
    applied = apply_parameters(definition, {})
    applied["o"]["k"].append(2)
    assert definition.orchestration.parameters[0].default == {"k": [1]}
    assert apply_parameters(definition, {}) == {"o": {"k": [1]}}


def test_parse_does_not_mutate_a_given_mapping() -> None:
    document = _doc(steps=[{"id": "a", "agent": "w", "input": {"x": [1]}}])
    snapshot = copy.deepcopy(document)
    parse_definition(document)
    assert document == snapshot


def test_template_checks_still_run_when_the_graph_has_a_cycle() -> None:
    steps: list[dict[str, Any]] = [
        {"id": "a", "agent": "w", "depends_on": ["b"]},
        {"id": "b", "agent": "w", "depends_on": ["a"], "input": "{{ steps.a }} {{ steps.c }}"},
        {"id": "c", "agent": "w"},
    ]
    problems = _problems(_doc(steps=steps))
    assert problems == {
        "orchestration.steps[0].depends_on": ["cycle: a -> b -> a (each step depends on the next)"],
        "orchestration.steps[1].input": [
            "step 'b' reads steps.c but does not depend on it (add 'c' to its depends_on)"
        ],
    }


def test_nul_characters_are_refused_with_their_path() -> None:
    """Neither database stores NUL in text: such a document is invalid, not a 500 later."""
    doc = (
        "metadata: {name: nul, version: 1.0.0}\n"
        "orchestration:\n"
        '  steps: [{id: s, agent: echo, input: {text: "a\\0b"}}]\n'
    )
    with pytest.raises(DefinitionInvalid) as caught:
        parse_definition(doc)
    assert [i.path for i in caught.value.issues] == ["orchestration.steps[0].input.text"]
