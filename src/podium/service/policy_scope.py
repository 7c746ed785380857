"""The routing policy as one organization's admin sees and changes it (issue 7 §4).

The policy is one document for the installation. An admin of the ``global`` organization, or
the local operator (no API key), sees and replaces all of it. Any other caller sees only the
rules and rate limits that apply to its organization (their ``organizations`` globs match
it), and changes only the ones it owns: those whose ``organizations`` is exactly ``[<org>]``.
Its ``PUT`` replaces its owned entries and keeps every other entry, mode, default and pattern
as they are; owned rules are placed after the others, so an organization can add
restrictions for itself but never get ahead of a rule the installation set.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Any

from podium.agents.policy.routing import PolicyDocument, RateLimit, Rule
from podium.agents.registry.resolver import GLOBAL
from podium.errors import Forbidden, Issue
from podium.service.actors import Actor


def sees_everything(actor: Actor) -> bool:
    return actor.key_id is None or actor.organization == GLOBAL


def applies_to(entry: Rule | RateLimit, organization: str) -> bool:
    globs = entry.organizations
    return globs is None or any(fnmatch.fnmatchcase(organization, g) for g in globs)


def owned_by(entry: Rule | RateLimit | Any, organization: str) -> bool:
    organizations: list[str] | None = entry.organizations
    return organizations == [organization]


def visible_part(document: PolicyDocument, actor: Actor) -> PolicyDocument:
    """What ``actor`` may see of the policy."""
    if sees_everything(actor):
        return document
    org = actor.organization
    return document.model_copy(
        update={
            "rules": [r for r in document.rules if applies_to(r, org)],
            "rateLimits": [r for r in document.rateLimits if applies_to(r, org)],
            "patterns": {},  # named patterns are the installation's; rules name them
        }
    )


def merged_document(
    current: PolicyDocument, submitted: Mapping[str, Any], actor: Actor
) -> dict[str, Any]:
    """The whole document after ``actor`` replaced its part with ``submitted``. Raises
    :class:`Forbidden` naming each entry that is not the caller's own."""
    if sees_everything(actor):
        return dict(submitted)
    org = actor.organization
    proposed = PolicyDocument.model_validate(submitted)
    entries: list[tuple[str, list[Rule] | list[RateLimit]]] = [
        ("rules", proposed.rules),
        ("rateLimits", proposed.rateLimits),
    ]
    issues = [
        Issue(
            f"{kind}[{i}].organizations",
            f"must be exactly [{org!r}]: an admin of {org} "
            "changes only its own organization's entries",
        )
        for kind, listed in entries
        for i, entry in enumerate(listed)
        if not owned_by(entry, org)
    ]
    for name in ("mode", "default"):
        if name in submitted and submitted[name] != getattr(current, name):
            issues.append(Issue(name, "only an admin of the global organization changes it"))
    if issues:
        raise Forbidden(
            f"an admin of {org} changes only its own organization's routing rules: "
            + "; ".join(str(i) for i in issues)
        )
    document = current.model_dump(mode="json", exclude_none=True)
    document["rules"] = [
        r.model_dump(mode="json", exclude_none=True) for r in current.rules if not owned_by(r, org)
    ] + [r.model_dump(mode="json", exclude_none=True) for r in proposed.rules]
    document["rateLimits"] = [
        r.model_dump(mode="json", exclude_none=True)
        for r in current.rateLimits
        if not owned_by(r, org)
    ] + [r.model_dump(mode="json", exclude_none=True) for r in proposed.rateLimits]
    return document
