"""Launching runs: validate parameters, refuse child orchestrations that form a cycle or nest
too deep, store."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from podium.domain.children import child_graph_issues, child_refs, range_issue
from podium.domain.definition import Definition, apply_parameters
from podium.errors import DefinitionInvalid
from podium.settings import Settings
from podium.storage.child_runs import ChildRuns
from podium.storage.records import LaunchRequest
from podium.storage.store import SqlStore


def check_child_graph(
    store: SqlStore, definition: Definition, *, organization: str, max_depth: int | None = None
) -> None:
    """Refuse (422 naming the path) a definition whose child orchestrations, with the
    definitions stored in ``organization`` and ``global``, form a cycle or nest deeper
    than ``max_depth`` (``PODIUM_MAX_CHILD_DEPTH``)."""
    if not child_refs(definition):
        return
    depth = Settings.from_env().max_child_depth if max_depth is None else max_depth
    children = ChildRuns(store)
    issues = child_graph_issues(
        definition, lambda name: children.versions_of(organization, name), max_depth=depth
    )
    for ref in child_refs(definition):
        issue = range_issue(ref.version, f"{ref.path}.version")
        if issue is not None:
            issues.append(issue)
    if issues:
        raise DefinitionInvalid(
            f"definition {definition.metadata.name}: child orchestrations are refused: "
            f"{len(issues)} problem(s)",
            issues,
        )


def prepare(
    definition: Definition,
    parameters: Mapping[str, Any],
    *,
    organization: str,
    metadata: dict[str, Any] | None = None,
) -> LaunchRequest:
    """Check that ``definition`` can run here and ``parameters`` fit it (422 naming every
    problem), apply the defaults, and return the request to launch."""
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
    request = prepare(definition, parameters, organization=organization, metadata=metadata)
    check_child_graph(store, definition, organization=organization)
    return store.launch(request)
