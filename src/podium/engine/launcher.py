"""Launching runs: validate parameters, refuse what this engine cannot run yet, store."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from podium.domain.definition import Definition, apply_parameters
from podium.errors import DefinitionInvalid, Issue
from podium.storage.records import LaunchRequest
from podium.storage.store import SqlStore


def unsupported(definition: Definition) -> list[Issue]:
    """Features of the definition format that this version of the engine does not run.

    Launching them anyway would silently skip a child run, so they are refused with their
    path instead.
    """
    issues = []
    for i, step in enumerate(definition.orchestration.steps):
        if step.type == "orchestration":
            issues.append(
                Issue(
                    f"orchestration.steps[{i}].type",
                    "child orchestrations are not supported by this version of Podium yet",
                )
            )
    return issues


def prepare(
    definition: Definition,
    parameters: Mapping[str, Any],
    *,
    organization: str,
    metadata: dict[str, Any] | None = None,
) -> LaunchRequest:
    """Check that ``definition`` can run here and ``parameters`` fit it (422 naming every
    problem), apply the defaults, and return the request to launch."""
    issues = unsupported(definition)
    if issues:
        raise DefinitionInvalid(
            f"definition {definition.metadata.name} cannot run here: {len(issues)} problem(s)",
            issues,
        )
    return LaunchRequest(
        definition=definition,
        parameters=apply_parameters(definition, parameters),
        organization_slug=organization,
        metadata=metadata or {},
    )


def launch(
    store: SqlStore,
    definition: Definition,
    parameters: Mapping[str, Any],
    *,
    organization: str,
    metadata: dict[str, Any] | None = None,
) -> str:
    """Create a run pinned to ``definition`` (see :func:`prepare`) and queue its first
    steps. Returns the run id."""
    return store.launch(
        prepare(definition, parameters, organization=organization, metadata=metadata)
    )
