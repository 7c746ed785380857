"""``parse_definition``: a document to a :class:`Definition`, or every problem at once."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, get_args

from pydantic import (
    BaseModel,
    ValidationError,
)

from podium.domain.definition import Definition
from podium.domain.loading import DEFAULT_LIMITS, DefinitionLimits, Rejected, load_document
from podium.domain.selectors import parse_segments, validate_selector
from podium.domain.templating import Reference, collect_references, join_path
from podium.domain.values import TYPE_NAMES, same_value, show_value, suggest, type_matches
from podium.errors import DefinitionInvalid, Issue

# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def parse_definition(
    source: str | bytes | Mapping[str, Any], limits: DefinitionLimits = DEFAULT_LIMITS
) -> Definition:
    """Parse and validate a definition given as YAML or JSON text or an already-parsed mapping.

    Raises :class:`DefinitionInvalid` (``"definition <name or ?> is invalid: N problem(s)"``)
    carrying every problem found, each an :class:`Issue` located by a path such as
    ``orchestration.steps[2].depends_on[0]``. A document that cannot be read at all (YAML
    syntax error, not a mapping, too large) yields a single issue with path ``""``.
    """
    try:
        data = load_document(source, limits)
    except Rejected as rejected:
        raise DefinitionInvalid("definition ? is invalid: 1 problem(s)", [rejected.issue]) from None

    issues = _limit_issues(data, limits)
    issues.extend(_nul_issues(data, ""))
    issues.extend(_structure_issues(data))
    issues.extend(_semantic_issues(data))
    issues.sort(key=_document_order)
    if issues:
        metadata = data.get("metadata")
        name = metadata.get("name") if isinstance(metadata, Mapping) else None
        shown = name if isinstance(name, str) and name else "?"
        raise DefinitionInvalid(f"definition {shown} is invalid: {len(issues)} problem(s)", issues)
    return Definition.model_validate(data)


def _nul_issues(value: Any, path: str) -> list[Issue]:
    """NUL characters anywhere in the document: no database stores them in text."""
    found: list[Issue] = []
    if isinstance(value, str):
        if "\x00" in value:
            found.append(Issue(path, "contains a NUL character (\\0), which cannot be stored"))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and "\x00" in key:
                found.append(Issue(path, "a key contains a NUL character (\\0)"))
                continue
            found.extend(_nul_issues(item, where))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found.extend(_nul_issues(item, f"{path}[{i}]"))
    return found


def _document_order(issue: Issue) -> tuple[Any, ...]:
    """Sort key grouping issues by location: array items by index, then fields by name."""
    try:
        segments = parse_segments("." + issue.path) if issue.path else ()
    except ValueError:
        return ((2, issue.path),)
    return tuple((0, s, "") if isinstance(s, int) else (1, 0, s) for s in segments)


def _as_map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _steps_path(index: int) -> str:
    return f"orchestration.steps[{index}]"


def _limit_issues(data: Mapping[str, Any], limits: DefinitionLimits) -> list[Issue]:
    issues: list[Issue] = []
    orchestration = _as_map(data.get("orchestration"))
    steps = _as_list(orchestration.get("steps"))
    if len(steps) > limits.max_steps:
        issues.append(
            Issue(
                "orchestration.steps",
                f"{len(steps)} steps; the limit is {limits.max_steps} steps per definition "
                "(max_steps)",
            )
        )
    parameters = _as_list(orchestration.get("parameters"))
    if len(parameters) > limits.max_parameters:
        issues.append(
            Issue(
                "orchestration.parameters",
                f"{len(parameters)} parameters; the limit is {limits.max_parameters} "
                "(max_parameters)",
            )
        )
    for index, step in enumerate(steps):
        depends_on = _as_list(_as_map(step).get("depends_on"))
        if len(depends_on) > limits.max_depends_on:
            issues.append(
                Issue(
                    f"{_steps_path(index)}.depends_on",
                    f"{len(depends_on)} dependencies; the limit is {limits.max_depends_on} "
                    "per step (max_depends_on)",
                )
            )
    return issues


def _loc_path(loc: Sequence[int | str]) -> str:
    path = ""
    for part in loc:
        path = join_path(path, part)
    return path


def _submodel(annotation: Any) -> type[BaseModel] | None:
    """The model class inside ``X``, ``X | None`` or ``list[X]``, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _submodel(arg)
        if found is not None:
            return found
    return None


def _model_at(loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model that validates the object at ``loc`` inside a Definition, if any."""
    model: type[BaseModel] | None = Definition
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None or part not in model.model_fields:
            return None
        model = _submodel(model.model_fields[part].annotation)
    return model


def _structure_issues(data: Mapping[str, Any]) -> list[Issue]:
    """Field-level problems (types, ranges, patterns, unknown and missing fields) by pydantic."""
    try:
        Definition.model_validate(data)
    except ValidationError as exc:
        issues: list[Issue] = []
        for error in exc.errors(include_url=False):
            loc = list(error["loc"])
            message = error["msg"]
            if loc and loc[-1] == "[key]":
                loc.pop()
                message = f"invalid key {error['input']!r}: {message}"
            elif error["type"] == "missing":
                message = "required field is missing"
            elif error["type"] == "string_type" and type(error["input"]) in (int, float):
                message = f"{message}, got the number {error['input']!r}; quote it in YAML"
            elif error["type"] == "extra_forbidden" and loc and isinstance(loc[-1], str):
                model = _model_at(loc[:-1])
                known = list(model.model_fields) if model is not None else []
                message = f"unknown field {loc[-1]!r}{suggest(loc[-1], known)}"
            issues.append(Issue(_loc_path(loc), message))
        return issues
    return []


def _json_issues(value: Any, path: str) -> Iterator[Issue]:
    """Issues for anything in ``value`` that JSON cannot carry (non-string keys, dates,
    binary, non-finite numbers)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                yield Issue(path, f"key {key!r} must be a string")
            else:
                yield from _json_issues(item, join_path(path, key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _json_issues(item, join_path(path, index))
    elif isinstance(value, float) and not math.isfinite(value):
        yield Issue(path, f"{value} is not a JSON number")
    elif value is not None and not isinstance(value, str | int | float | bool):
        yield Issue(path, f"a {type(value).__name__} value is not JSON; use a string")


def _parameter_issues(data: Mapping[str, Any]) -> tuple[list[Issue], set[str]]:
    """Checks on declared parameters; also returns the declared names (as far as readable)."""
    issues: list[Issue] = []
    first_at: dict[str, int] = {}
    raw_parameters = _as_list(_as_map(data.get("orchestration")).get("parameters"))
    for index, raw in enumerate(raw_parameters):
        if not isinstance(raw, Mapping):
            continue
        path = f"orchestration.parameters[{index}]"
        name = raw.get("name")
        if isinstance(name, str):
            if name in first_at:
                issues.append(
                    Issue(
                        f"{path}.name",
                        f"duplicate parameter name {name!r} (first declared at "
                        f"orchestration.parameters[{first_at[name]}])",
                    )
                )
            else:
                first_at[name] = index
        if "default" in raw:
            issues.extend(_json_issues(raw["default"], f"{path}.default"))
        enum = raw.get("enum")
        if isinstance(enum, list):
            issues.extend(_json_issues(enum, f"{path}.enum"))
        kind = raw.get("type", "string")
        if not isinstance(kind, str) or kind not in TYPE_NAMES:
            continue  # reported by the structure check
        enum_ok = isinstance(enum, list)
        if isinstance(enum, list):
            if not enum:
                issues.append(Issue(f"{path}.enum", "enum must list at least one value"))
                enum_ok = False
            for position, allowed in enumerate(enum):
                if not type_matches(allowed, kind):
                    enum_ok = False
                    issues.append(
                        Issue(
                            f"{path}.enum[{position}]",
                            f"enum value {show_value(allowed)} is not {TYPE_NAMES[kind]} "
                            f"(the parameter's type is {kind})",
                        )
                    )
        if "default" in raw:
            default = raw["default"]
            if not type_matches(default, kind):
                issues.append(
                    Issue(
                        f"{path}.default",
                        f"default {show_value(default)} is not {TYPE_NAMES[kind]} "
                        f"(the parameter's type is {kind})",
                    )
                )
            elif (
                enum_ok
                and isinstance(enum, list)
                and not any(same_value(default, allowed) for allowed in enum)
            ):
                issues.append(
                    Issue(
                        f"{path}.default",
                        f"default {show_value(default)} is not one of the enum values "
                        f"{show_value(enum)}",
                    )
                )
    return issues, set(first_at)


def _find_cycles(graph: Mapping[str, list[str]], order: Sequence[str]) -> list[list[str]]:
    """Distinct cycles found by an iterative depth-first search (one per back edge), each
    rotated to start at its earliest step in ``order``; ``graph`` maps id -> dependencies."""
    position = {step_id: index for index, step_id in enumerate(order)}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    cycles: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()
    for root in order:
        if root in state:
            continue
        state[root] = 1
        path = [root]
        stack: list[Iterator[str]] = [iter(graph.get(root, []))]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
                continue
            if nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(graph.get(nxt, [])))
            elif state[nxt] == 1:
                cycle = path[path.index(nxt) :]
                start = min(range(len(cycle)), key=lambda i: position[cycle[i]])
                rotated = tuple(cycle[start:] + cycle[:start])
                if rotated not in seen:
                    seen.add(rotated)
                    cycles.append(list(rotated))
    return cycles


def _closure(direct: Sequence[str], graph: Mapping[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    stack = list(direct)
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(graph.get(current, []))
    return seen


def _upstream_masks(
    graph: Mapping[str, list[str]], bits: Mapping[str, int]
) -> dict[str, int] | None:
    """Transitive dependencies of every step as bit masks (``bits`` gives each step's bit),
    computed once in topological order; ``None`` if the graph has a cycle."""
    remaining = {step_id: len(deps) for step_id, deps in graph.items()}
    dependents: dict[str, list[str]] = {step_id: [] for step_id in graph}
    for step_id, deps in graph.items():
        for dep in deps:
            dependents[dep].append(step_id)
    ready = [step_id for step_id, count in remaining.items() if count == 0]
    masks: dict[str, int] = {}
    while ready:
        step_id = ready.pop()
        mask = 0
        for dep in graph[step_id]:
            mask |= bits[dep] | masks[dep]
        masks[step_id] = mask
        for dependent in dependents[step_id]:
            remaining[dependent] -= 1
            if remaining[dependent] == 0:
                ready.append(dependent)
    return masks if len(masks) == len(graph) else None


def _upstream_test(
    deps: Sequence[str],
    graph: Mapping[str, list[str]],
    bits: Mapping[str, int],
    masks: Mapping[str, int] | None,
) -> Callable[[str], bool]:
    """A membership test for the transitive dependencies of a step with direct ``deps``."""
    if masks is None:  # a cycle: fall back to a plain search
        return _closure(deps, graph).__contains__
    mask = 0
    for dep in deps:
        mask |= bits[dep] | masks[dep]
    return lambda step_id: bool(mask & bits.get(step_id, 0))


def _semantic_issues(data: Mapping[str, Any]) -> list[Issue]:
    """Cross-field and cross-step rules, checked on whatever parts of the document are
    readable (so they are reported together with field-level problems)."""
    issues, parameter_names = _parameter_issues(data)
    raw_steps = _as_list(_as_map(data.get("orchestration")).get("steps"))
    steps = [_as_map(raw) for raw in raw_steps]

    first_at: dict[str, int] = {}
    ids: list[str | None] = []
    for index, step in enumerate(steps):
        step_id = step.get("id")
        if not isinstance(step_id, str):
            ids.append(None)
            continue
        ids.append(step_id)
        if step_id in first_at:
            issues.append(
                Issue(
                    f"{_steps_path(index)}.id",
                    f"duplicate step id {step_id!r} (first used by "
                    f"{_steps_path(first_at[step_id])})",
                )
            )
        else:
            first_at[step_id] = index

    # Dependencies: existence, self, repeats; build the graph of valid edges.
    direct: list[list[str]] = []
    graph: dict[str, list[str]] = {}
    for index, step in enumerate(steps):
        step_id = ids[index]
        deps: list[str] = []
        for position, dep in enumerate(_as_list(step.get("depends_on"))):
            if not isinstance(dep, str):
                continue  # reported by the structure check
            path = f"{_steps_path(index)}.depends_on[{position}]"
            if dep == step_id:
                issues.append(Issue(path, f"step {dep!r} depends on itself"))
            elif dep not in first_at:
                issues.append(Issue(path, f"unknown step {dep!r}{suggest(dep, list(first_at))}"))
            elif dep in deps:
                issues.append(Issue(path, f"{dep!r} is listed twice"))
            else:
                deps.append(dep)
        direct.append(deps)
        if step_id is not None and first_at.get(step_id) == index:
            graph[step_id] = deps

    for cycle in _find_cycles(graph, list(first_at)):
        issues.append(
            Issue(
                f"{_steps_path(first_at[cycle[0]])}.depends_on",
                f"cycle: {' -> '.join([*cycle, cycle[0]])} (each step depends on the next)",
            )
        )

    bits = {step_id: 1 << position for position, step_id in enumerate(first_at)}
    masks = _upstream_masks(graph, bits)
    for index, step in enumerate(steps):
        is_upstream = _upstream_test(direct[index], graph, bits, masks)
        issues.extend(_step_issues(index, step, ids[index], is_upstream, first_at, parameter_names))
    return issues


def _step_issues(
    index: int,
    step: Mapping[str, Any],
    step_id: str | None,
    is_upstream: Callable[[str], bool],
    known_steps: Mapping[str, int],
    parameter_names: set[str],
) -> list[Issue]:
    issues: list[Issue] = []
    base = _steps_path(index)
    kind = step.get("type", "agent")
    target = step.get("orchestration")
    if kind == "agent":
        if step.get("agent") is None:
            issues.append(
                Issue(f"{base}.agent", "an agent step must name an agent (agent: <slug>)")
            )
        if target is not None:
            issues.append(
                Issue(
                    f"{base}.orchestration",
                    "only a step with type: orchestration launches a child orchestration",
                )
            )
    elif kind == "orchestration":
        if target is None:
            issues.append(
                Issue(
                    f"{base}.orchestration",
                    "an orchestration step must name its target (orchestration: {name: ...})",
                )
            )
        if step.get("agent") is not None:
            issues.append(
                Issue(f"{base}.agent", "an orchestration step does not call an agent; remove it")
            )

    mapping = step.get("output_mapping")
    if isinstance(mapping, Mapping):
        for key, selector in mapping.items():
            if isinstance(key, str) and isinstance(selector, str):
                problem = validate_selector(selector)
                if problem is not None:
                    issues.append(Issue(join_path(f"{base}.output_mapping", key), problem))

    # Templated fields: input, orchestration.parameters, checkpoint_after.question.
    templated: list[tuple[str, Any, bool]] = []
    if "input" in step:
        issues.extend(_json_issues(step["input"], f"{base}.input"))
        templated.append((f"{base}.input", step["input"], False))
    target_parameters = _as_map(target).get("parameters")
    if isinstance(target_parameters, Mapping):
        path = f"{base}.orchestration.parameters"
        for key, value in target_parameters.items():
            if isinstance(key, str):
                issues.extend(_json_issues(value, join_path(path, key)))
        templated.append((path, target_parameters, False))
    question = _as_map(step.get("checkpoint_after")).get("question")
    if isinstance(question, str):
        templated.append((f"{base}.checkpoint_after.question", question, True))

    label = repr(step_id) if step_id is not None else base
    for path, value, own_output_readable in templated:
        references, syntax_issues = collect_references(value, path)
        issues.extend(syntax_issues)
        for where, ref in references:
            problem = _reference_problem(
                ref, label, step_id, is_upstream, known_steps, parameter_names, own_output_readable
            )
            if problem is not None:
                issues.append(Issue(where, problem))
    return issues


def _reference_problem(
    ref: Reference,
    label: str,
    step_id: str | None,
    is_upstream: Callable[[str], bool],
    known_steps: Mapping[str, int],
    parameter_names: set[str],
    own_output_readable: bool,
) -> str | None:
    if ref.kind == "parameters":
        if ref.name not in parameter_names:
            return (
                f"step {label} reads parameters.{ref.name} but no parameter {ref.name!r} is "
                f"declared{suggest(ref.name, sorted(parameter_names))}"
            )
    elif ref.kind == "steps":
        if ref.name == step_id:
            if not own_output_readable:
                return (
                    f"step {label} reads its own output ({ref.text}); only checkpoint_after."
                    "question may do that"
                )
        elif ref.name not in known_steps:
            return (
                f"step {label} reads steps.{ref.name} but no step {ref.name!r} exists"
                f"{suggest(ref.name, list(known_steps))}"
            )
        elif not is_upstream(ref.name):
            return (
                f"step {label} reads steps.{ref.name} but does not depend on it "
                f"(add {ref.name!r} to its depends_on)"
            )
    return None
