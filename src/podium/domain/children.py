"""Child orchestrations, the pure part: version ranges and the graph of definitions.

Definitions that launch each other by name form a graph. It must have no cycle (a run of
``a`` that launches ``b`` that launches ``a`` again would never end) and no chain of
children deeper than the limit (``PODIUM_MAX_CHILD_DEPTH``). :func:`child_graph_issues`
checks both for one definition, at push and at launch, naming the path of the offending
step and the chain of names. Pure: the caller supplies the stored versions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import semantic_version

from podium.domain.definition import Definition
from podium.errors import Issue

DEFAULT_MAX_CHILD_DEPTH = 8


def version_matches(version: str, spec: str | None) -> bool:
    """Whether ``version`` satisfies ``spec``: an exact version or an npm-style range
    (``^1``, ``~1.2``, ``>=1.0 <2``); ``None``, ``""``, ``*`` and ``latest`` match any.
    An unreadable range matches nothing."""
    if spec is None or spec in ("", "*", "latest"):
        return True
    try:
        return bool(semantic_version.NpmSpec(spec).match(semantic_version.Version(version)))
    except ValueError:
        return False


def range_issue(spec: str | None, path: str) -> Issue | None:
    """An issue at ``path`` if ``spec`` is not a version or npm-style range."""
    if spec is None or spec in ("", "*", "latest"):
        return None
    try:
        semantic_version.NpmSpec(spec)
    except ValueError as exc:
        return Issue(path, f"{spec!r} is not a version or npm-style range: {exc}")
    return None


@dataclass(frozen=True)
class ChildRef:
    """One ``type: orchestration`` step's target."""

    step_index: int
    name: str
    version: str | None

    @property
    def path(self) -> str:
        return f"orchestration.steps[{self.step_index}].orchestration"


def child_refs(definition: Definition) -> list[ChildRef]:
    """The child orchestrations ``definition`` launches, in step order."""
    return [
        ChildRef(i, step.orchestration.name, step.orchestration.version)
        for i, step in enumerate(definition.orchestration.steps)
        if step.type == "orchestration" and step.orchestration is not None
    ]


VersionsOf = Callable[[str], Sequence[Definition]]


def child_graph_issues(
    root: Definition, versions_of: VersionsOf, *, max_depth: int = DEFAULT_MAX_CHILD_DEPTH
) -> list[Issue]:
    """Cycles and too-deep nesting reachable from ``root``, each naming its path.

    ``versions_of(name)`` returns the stored versions that could be launched under that
    name (any a range may pick, including ones an operator could re-activate); ``root``
    stands for its own name, whatever is stored. A target with no stored version is not an
    issue here: it fails its step at run time (``child_definition_unavailable``). The
    children of ``root`` are at depth 1; a chain deeper than ``max_depth`` is refused. Each
    issue is reported at the step of ``root`` that leads to it.
    """
    name = root.metadata.name
    # name -> the longest chain of names below it, once explored without a cycle
    explored: dict[str, list[str]] = {}

    def candidates(ref: ChildRef) -> list[Definition]:
        if ref.name == name:
            return [root]
        found = versions_of(ref.name)
        return [d for d in found if version_matches(d.metadata.version, ref.version)]

    def longest_below(definition: Definition, chain: list[str]) -> list[str] | str:
        """The longest chain under ``definition`` (whose name ends ``chain``), or the
        message of the first problem found."""
        here = definition.metadata.name
        if here in explored:
            return explored[here]
        longest: list[str] = []
        for ref in child_refs(definition):
            if ref.name in chain:
                cycle = " -> ".join([*chain[chain.index(ref.name) :], ref.name])
                return f"child orchestrations form a cycle: {cycle}"
            for child in candidates(ref):
                sub = longest_below(child, [*chain, ref.name])
                if isinstance(sub, str):
                    return sub
                if len(chain) + len(sub) > max_depth:
                    names = " -> ".join([*chain, ref.name, *sub])
                    return (
                        f"child orchestrations nest deeper than {max_depth} levels "
                        f"(PODIUM_MAX_CHILD_DEPTH): {names}"
                    )
                if 1 + len(sub) > len(longest):
                    longest = [ref.name, *sub]
        explored[here] = longest
        return longest

    issues: list[Issue] = []
    for ref in child_refs(root):
        if max_depth < 1:
            issues.append(Issue(ref.path, "child orchestrations are not allowed (depth 0)"))
            continue
        problem = longest_below_step(ref, candidates, longest_below, name, max_depth)
        if problem is not None:
            issues.append(Issue(ref.path, problem))
    return issues


def longest_below_step(
    ref: ChildRef,
    candidates: Callable[[ChildRef], list[Definition]],
    longest_below: Callable[[Definition, list[str]], list[str] | str],
    root_name: str,
    max_depth: int,
) -> str | None:
    """The problem (cycle, depth) under one step of the root, or None."""
    if ref.name == root_name:
        return f"child orchestrations form a cycle: {root_name} -> {root_name}"
    for child in candidates(ref):
        sub = longest_below(child, [root_name, ref.name])
        if isinstance(sub, str):
            return sub
        if 1 + len(sub) > max_depth:
            names = " -> ".join([root_name, ref.name, *sub])
            return (
                f"child orchestrations nest deeper than {max_depth} levels "
                f"(PODIUM_MAX_CHILD_DEPTH): {names}"
            )
    return None
