"""Files read at start: ``agents.yaml`` (the agents of each organization) and the routing
policy file (``PODIUM_ROUTING_POLICY``).

``agents.yaml``::

    organizations:
      acme:
        - slug: translator               # a2a: url (its card is fetched)
          url: https://translator.example.com
          concurrencyLimit: 4
          timeoutSeconds: 60
        - slug: summarize                # python: target (kind follows from url/target)
          target: mycompany.agents:summarize
          active: false
      global:
        - {slug: shared-echo, target: "podium.agents.demo:echo"}

Loading is idempotent: a new agent is registered, an existing one is updated to match the
file (a changed kind replaces it), an agent missing from the file is left alone. The whole
file is validated first (every problem reported with its path, nothing written). URLs pass
the URL guard; python targets may name any module (the file is the operator's). A card that
cannot be fetched does not stop the load: the agent is stored without it (or keeps its old
one), the failure goes to its health and to the report's warnings.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from podium.agents.policy.routing import (
    POLICY_DOCUMENT,
    RoutingPolicy,
    issue_path,
    load_policy_file,
)
from podium.agents.registry.admission import AgentCardUnavailable, AgentChecks, AgentRegistration
from podium.agents.registry.resolver import registry_changed
from podium.errors import InvalidInput, Issue, PodiumError
from podium.net.urlguard import UrlGuard
from podium.settings import Settings
from podium.storage.agents import AgentRecord
from podium.storage.store import SqlStore

log = logging.getLogger(__name__)

ORG_PATTERN = r"^[a-z0-9][a-z0-9-]*$"


class AgentsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    organizations: dict[str, list[AgentRegistration]] = Field(default_factory=dict)


@dataclass
class LoadReport:
    """What a load did, as ``organization/slug`` names."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def parse_agents_file(text: str | bytes, *, source: str = "agents.yaml") -> AgentsFile:
    """Validate an ``agents.yaml`` document; :class:`InvalidInput` lists every problem."""
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{source} is not valid YAML", [Issue("", str(exc))]) from exc
    try:
        parsed = AgentsFile.model_validate(data or {})
    except ValidationError as exc:
        issues = [Issue(issue_path(e["loc"]), e["msg"]) for e in exc.errors(include_url=False)]
        raise InvalidInput(f"invalid {source}", issues) from exc
    issues = []
    for org, entries in parsed.organizations.items():
        if not re.match(ORG_PATTERN, org):
            issues.append(Issue(f"organizations.{org}", "is not an organization slug"))
        seen: set[str] = set()
        for i, entry in enumerate(entries):
            path = f"organizations.{org}[{i}]"
            issues += entry.issues(path)
            if entry.slug in seen:
                issues.append(Issue(f"{path}.slug", f"{entry.slug} appears twice"))
            seen.add(entry.slug)
    if issues:
        raise InvalidInput(f"invalid {source}", issues)
    return parsed


def load_agents_file(
    path: str | Path, store: SqlStore, *, checks: AgentChecks | None = None
) -> LoadReport:
    """Register or update the agents of ``path`` (see the module docstring). ``checks``
    default to the environment's URL guard with any python module allowed."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read agents file {path}: {exc}") from exc
    parsed = parse_agents_file(text, source=str(path))
    checks = checks or AgentChecks.from_env(trusted=True)
    _check_all(parsed, checks)
    report = _apply_all(store, parsed, checks)
    registry_changed()
    log.info(
        "agents file %s: %d created, %d updated, %d unchanged",
        path,
        len(report.created),
        len(report.updated),
        len(report.unchanged),
    )
    return report


def _check_all(parsed: AgentsFile, checks: AgentChecks) -> None:
    """Every URL and target of the file, all problems at once, before anything is written."""
    issues: list[Issue] = []
    for org, entries in parsed.organizations.items():
        for i, entry in enumerate(entries):
            path = f"organizations.{org}[{i}]"
            try:
                if entry.resolved_kind == "a2a":
                    checks.url_guard.check_url(entry.url or "", field_name=f"{path}.url")
                else:
                    checks.check_target(entry.target or "", field_name=f"{path}.target")
            except InvalidInput as exc:
                issues += exc.issues
    if issues:
        raise InvalidInput("invalid agents file", issues)


def _apply_all(store: SqlStore, parsed: AgentsFile, checks: AgentChecks) -> LoadReport:
    """Every entry in one transaction, as upserts (two processes loading the same file at
    once both succeed); then the cards of a2a agents that are new, changed or have none,
    fetched outside the transaction (a card fetch is network I/O)."""
    entries = [
        (
            org,
            entry.slug,
            entry.resolved_kind,
            {
                "url": entry.url,
                "target": entry.target,
                "active": entry.active,
                "concurrency_limit": entry.concurrencyLimit,
                "timeout_seconds": entry.timeoutSeconds,
            },
        )
        for org, org_entries in parsed.organizations.items()
        for entry in org_entries
    ]
    report = LoadReport()
    for record, outcome in store.upsert_agents(entries):
        name = f"{record.organization_slug}/{record.slug}"
        stale = record.kind == "a2a" and (outcome != "unchanged" or record.card is None)
        if outcome == "created":
            report.created.append(name)
        elif outcome == "updated" or stale:
            report.updated.append(name)
        else:
            report.unchanged.append(name)
        if stale:
            _fetch_card(store, record, checks, report)
    return report


def _fetch_card(
    store: SqlStore, record: AgentRecord, checks: AgentChecks, report: LoadReport
) -> None:
    try:
        card = checks.card_for(record.url or "")
    except (AgentCardUnavailable, InvalidInput) as exc:
        message = f"{record.organization_slug}/{record.slug}: {exc.message}"
        log.warning("agents file: %s", message)
        report.warnings.append(message)
        store.record_agent_health(
            record.id, error={"code": exc.code, "message": exc.message, "retryable": True}
        )
        return
    store.record_agent_card(record.id, card)


def load_routing_policy(
    path: str | Path, store: SqlStore, *, actor: str | None = None
) -> RoutingPolicy:
    """Validate the policy file and make it the policy in force (stored as the
    ``routing-policy`` document, which every worker reads). A later ``PUT`` replaces it
    until the next start."""
    policy = load_policy_file(path)
    store.put_config(POLICY_DOCUMENT, policy.to_document(), actor=actor or f"file:{path}")
    registry_changed()
    log.info(
        "routing policy %s: %d rules, %d rate limits",
        path,
        len(policy.document.rules),
        len(policy.document.rateLimits),
    )
    return policy


@dataclass
class StartupReport:
    agents: LoadReport | None = None
    policy: RoutingPolicy | None = None


def load_startup_files(
    store: SqlStore,
    environ: Mapping[str, str] | None = None,
    *,
    agents_file: str | Path | None = None,
) -> StartupReport:
    """What ``podium serve`` (and ``podium worker``) load at start: ``agents_file`` (else
    ``PODIUM_AGENTS_FILE``) and ``PODIUM_ROUTING_POLICY``, each when given. Raises
    :class:`InvalidInput` (or another :class:`PodiumError`) naming the bad file."""
    settings = Settings.from_env(environ)
    report = StartupReport()
    path = agents_file or settings.agents_file
    if path:
        checks = AgentChecks(url_guard=UrlGuard.from_settings(settings), python_modules=None)
        report.agents = load_agents_file(path, store, checks=checks)
    policy_path = settings.routing_policy
    if policy_path:
        try:
            report.policy = load_routing_policy(policy_path, store)
        except PodiumError as exc:
            exc.message = f"PODIUM_ROUTING_POLICY ({policy_path}): {exc.message}"
            raise
    return report
