"""Launch parameters: checked against the declared ones, defaults applied."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from podium.domain.definition import Definition
from podium.domain.values import suggest, value_problem
from podium.errors import Issue, ParametersInvalid

# --------------------------------------------------------------------------------------------
# Launch parameters
# --------------------------------------------------------------------------------------------


def apply_parameters(definition: Definition, given: Mapping[str, Any]) -> dict[str, Any]:
    """Check launch parameters against the declared ones and apply defaults.

    Rejects, all at once, unknown names, missing required values (required without a default),
    values of the wrong type (booleans are not numbers; integers are numbers; ``null`` is no
    type) and values outside ``enum``: raises :class:`ParametersInvalid` with one issue per
    problem at ``parameters.<name>``. Returns a new dict, in declaration order, of the given
    values plus the defaults of parameters not given; parameters neither given nor defaulted
    (and not required) are absent.
    """
    specs = definition.orchestration.parameters
    declared = {spec.name for spec in specs}
    issues: list[Issue] = []
    for name in given:
        if name not in declared:
            known = ", ".join(spec.name for spec in specs) or "none"
            issues.append(
                Issue(
                    f"parameters.{name}",
                    f"unknown parameter {name!r}{suggest(name, sorted(declared))}; "
                    f"declared: {known}",
                )
            )
    result: dict[str, Any] = {}
    for spec in specs:
        path = f"parameters.{spec.name}"
        if spec.name in given:
            value = given[spec.name]
            problem = value_problem(value, spec.type, spec.enum)
            if problem is not None:
                issues.append(Issue(path, problem))
            else:
                result[spec.name] = copy.deepcopy(value)
        elif spec.has_default:
            result[spec.name] = copy.deepcopy(spec.default)
        elif spec.required:
            issues.append(Issue(path, f"required parameter {spec.name!r} is missing"))
    if issues:
        raise ParametersInvalid(f"parameters are invalid: {len(issues)} problem(s)", issues)
    return result
