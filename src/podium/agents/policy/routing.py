"""The routing policy: rules evaluated before every agent call (spec section 7).

Document format (YAML or JSON; stored as the ``routing-policy`` configuration document,
read from the file named by ``PODIUM_ROUTING_POLICY`` at start, edited with
``GET/PUT /api/admin/routing-policy``)::

    mode: first-match          # or deny-overrides (see below); default first-match
    default: allow             # decision when no rule matches: allow (default) or deny
    patterns:                  # extra named input patterns (regular expressions)
      project-code: "PRJ-[0-9]{6}"
    rules:
      - name: no-pii-to-external           # unique; named in every decision and error
        effect: deny                        # allow | deny
        organizations: ["acme"]             # globs on the calling organization (omitted: any)
        agents: ["ext-*"]                   # globs on the agent slug
        kinds: [a2a]                        # a2a | python
        skills: ["translate*"]              # globs on the skill ids and names of the agent card
        inputPatterns: [card-number, us-ssn]  # the resolved input contains one of these
    rateLimits:
      - name: translator-budget
        scope: agent                        # one bucket per agent, or per organization
        agents: ["translator"]              # which calls count (globs; omitted: any)
        organizations: ["*"]
        ratePerSecond: 5                    # or ratePerMinute
        burst: 10                           # bucket size (default: the rate, at least 1)
        maxWaitSeconds: 0                   # wait this long for a token, then deny

A rule matches a call when every condition it states matches. Semantics:

* ``first-match``: rules are tried in order and the first that matches decides;
* ``deny-overrides``: any matching ``deny`` rule denies (the first in order is named); else
  the first matching ``allow`` rule allows;
* when no rule matches, ``default`` decides and the decision names the rule ``default``.

The built-in input patterns (``card-number``, ``us-ssn``, ``iban``, ``email``; see
:mod:`podium.agents.policy.patterns`) are off until a rule names them. A call that the rules allow
then takes a token from every matching rate limit (buckets per worker process, see
:mod:`podium.agents.policy.ratelimit`).

A denied call raises :class:`AgentError` ``routing_showstopper`` whose message names the
rule, e.g. ``denied by rule "no-pii-to-external" (pattern card-number matched
input.userMessage)``; it is not retryable, except a rate-limit denial, which is (the step's
retry policy tries again later). Every decision is logged at INFO on ``podium.routing`` with
its rule, never with the input.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from podium.agents.base import AgentError
from podium.agents.policy.patterns import BUILTIN_PATTERNS, InputPattern, custom_pattern, scan
from podium.agents.policy.ratelimit import RateLimiter
from podium.domain.outcomes import ErrorCode
from podium.errors import InvalidInput, Issue

log = logging.getLogger("podium.routing")

POLICY_DOCUMENT = "routing-policy"
DEFAULT_RULE = "default"

Name = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rule(_Model):
    name: str = Name
    effect: Literal["allow", "deny"]
    description: str | None = None
    organizations: list[str] | None = None
    agents: list[str] | None = None
    kinds: list[Literal["a2a", "python"]] | None = None
    skills: list[str] | None = None
    inputPatterns: list[str] | None = None


class RateLimit(_Model):
    name: str = Name
    scope: Literal["agent", "organization"]
    description: str | None = None
    organizations: list[str] | None = None
    agents: list[str] | None = None
    ratePerSecond: float | None = Field(default=None, gt=0)
    ratePerMinute: float | None = Field(default=None, gt=0)
    burst: int | None = Field(default=None, ge=1)
    maxWaitSeconds: float = Field(default=0.0, ge=0, le=300)

    @property
    def rate(self) -> float:
        """Tokens per second."""
        if self.ratePerSecond is not None:
            return self.ratePerSecond
        return (self.ratePerMinute or 0.0) / 60.0

    @property
    def size(self) -> float:
        return float(self.burst if self.burst is not None else max(1, round(self.rate)))


class PolicyDocument(_Model):
    mode: Literal["first-match", "deny-overrides"] = "first-match"
    default: Literal["allow", "deny"] = "allow"
    patterns: dict[str, str] = Field(default_factory=dict)
    rules: list[Rule] = Field(default_factory=list)
    rateLimits: list[RateLimit] = Field(default_factory=list)


@dataclass(frozen=True)
class Call:
    """One agent call as the policy sees it. ``organization`` is the run's organization;
    ``owner`` the organization the agent is registered in (``global`` for shared ones)."""

    organization: str
    agent: str
    owner: str
    kind: str
    skills: tuple[str, ...] = ()
    run_id: str = ""
    step_id: str = ""


@dataclass(frozen=True)
class Decision:
    """The outcome of the policy for one call, and the rule that made it."""

    allowed: bool
    rule: str
    reason: str
    retryable: bool = False
    wait: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def error(self) -> AgentError:
        return AgentError(
            ErrorCode.ROUTING_SHOWSTOPPER,
            f'denied by rule "{self.rule}" ({self.reason})',
            retryable=self.retryable,
            details={"rule": self.rule, **self.details},
        )


def _any_glob(value: str, globs: Sequence[str] | None) -> bool:
    return globs is None or any(fnmatch.fnmatchcase(value, g) for g in globs)


class RoutingPolicy:
    """A validated policy document, ready to decide calls. Immutable."""

    def __init__(self, document: PolicyDocument, patterns: Mapping[str, InputPattern]) -> None:
        self.document = document
        self._patterns = {
            rule.name: [patterns[n] for n in rule.inputPatterns or ()] for rule in document.rules
        }

    @classmethod
    def allow_all(cls) -> RoutingPolicy:
        return cls(PolicyDocument(), {})

    @classmethod
    def parse(cls, source: Mapping[str, Any] | str | bytes | None) -> RoutingPolicy:
        """Validate a document (a mapping, or YAML/JSON text); :class:`InvalidInput` lists
        every problem with its path (``rules[1].inputPatterns[0]``)."""
        if source is None:
            return cls.allow_all()
        data: Any = source
        if isinstance(source, str | bytes):
            try:
                data = yaml.safe_load(source)
            except yaml.YAMLError as exc:
                raise InvalidInput(
                    "routing policy is not valid YAML or JSON", [Issue("", str(exc))]
                ) from exc
            data = {} if data is None else data
        if not isinstance(data, Mapping):
            raise InvalidInput("invalid routing policy", [Issue("", "must be a mapping")])
        try:
            document = PolicyDocument.model_validate(dict(data))
        except ValidationError as exc:
            issues = [Issue(issue_path(e["loc"]), e["msg"]) for e in exc.errors(include_url=False)]
            raise InvalidInput("invalid routing policy", issues) from exc
        return cls(document, _check(document, data))

    def to_document(self) -> dict[str, Any]:
        """The document as stored and served (JSON types, unset fields left out)."""
        data: dict[str, Any] = self.document.model_dump(mode="json", exclude_none=True)
        return data

    def decide(self, call: Call, input: Any) -> Decision:
        """The rules' decision for ``call`` with resolved ``input`` (rate limits aside)."""
        doc = self.document
        allowing: Decision | None = None
        for rule in doc.rules:
            reason = self._match(rule, call, input)
            if reason is None:
                continue
            decision = Decision(rule.effect == "allow", rule.name, reason[0], details=reason[1])
            if doc.mode == "first-match" or rule.effect == "deny":
                return decision
            allowing = allowing or decision
        if allowing is not None:
            return allowing
        return Decision(
            doc.default == "allow",
            DEFAULT_RULE,
            "no rule matched" if doc.rules else "no rules configured",
        )

    def _match(self, rule: Rule, call: Call, input: Any) -> tuple[str, dict[str, Any]] | None:
        """Why ``rule`` matches ``call`` (text and details), or None when it does not."""
        if not (
            _any_glob(call.organization, rule.organizations)
            and _any_glob(call.agent, rule.agents)
            and (rule.kinds is None or call.kind in rule.kinds)
        ):
            return None
        parts = [f'organization "{call.organization}"', f'agent "{call.agent}"']
        details: dict[str, Any] = {}
        if rule.skills is not None:
            skill = next((s for s in call.skills if _any_glob(s, rule.skills)), None)
            if skill is None:
                return None
            parts.append(f'skill "{skill}"')
            details["skill"] = skill
        if rule.inputPatterns is not None:
            found = scan(input, self._patterns[rule.name])
            if found is None:
                return None
            details.update(pattern=found[0], path=found[1])
            return f"pattern {found[0]} matched {found[1]}", details
        return ", ".join(parts), details

    def limits_for(self, call: Call) -> list[tuple[RateLimit, str]]:
        """The rate limits ``call`` counts against, each with its bucket key."""
        found = []
        for limit in self.document.rateLimits:
            if _any_glob(call.organization, limit.organizations) and _any_glob(
                call.agent, limit.agents
            ):
                key = f"{call.owner}/{call.agent}" if limit.scope == "agent" else call.organization
                found.append((limit, key))
        return found


def issue_path(loc: Sequence[int | str]) -> str:
    """A pydantic error location as an issue path: ``rules[1].name``."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _unstorable(value: Any, path: str) -> list[Issue]:
    """Strings a database cannot store (NUL, unpaired surrogates), with their paths."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return [Issue(path, "is not valid Unicode text")]
        return [Issue(path, "contains a NUL character")] if "\x00" in value else []
    found: list[Issue] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            found += _unstorable(key, path) + _unstorable(
                item, f"{path}.{key}" if path else str(key)
            )
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _unstorable(item, f"{path}[{index}]")
    return found


def _check(document: PolicyDocument, raw: Mapping[str, Any]) -> dict[str, InputPattern]:
    """Cross-field checks; the named patterns the rules may use."""
    issues: list[Issue] = _unstorable(raw, "")
    patterns = dict(BUILTIN_PATTERNS)
    for name, regex in document.patterns.items():
        if name in BUILTIN_PATTERNS:
            issues.append(Issue(f"patterns.{name}", "is a built-in pattern; choose another name"))
            continue
        if len(regex) > 500:
            issues.append(Issue(f"patterns.{name}", "is longer than 500 characters"))
            continue
        try:
            patterns[name] = custom_pattern(name, regex)
        except re.error as exc:
            issues.append(Issue(f"patterns.{name}", f"is not a valid regular expression: {exc}"))
    seen: dict[str, str] = {}
    named = [(f"rules[{i}]", r.name) for i, r in enumerate(document.rules)] + [
        (f"rateLimits[{i}]", r.name) for i, r in enumerate(document.rateLimits)
    ]
    for where, name in named:
        if name == DEFAULT_RULE:
            issues.append(Issue(f"{where}.name", f'"{DEFAULT_RULE}" names the default decision'))
        elif name in seen:
            issues.append(Issue(f"{where}.name", f'"{name}" is also the name of {seen[name]}'))
        seen.setdefault(name, where)
    for i, rule in enumerate(document.rules):
        for j, name in enumerate(rule.inputPatterns or ()):
            if name not in patterns and f"patterns.{name}" not in {x.path for x in issues}:
                known = ", ".join(sorted(patterns))
                issues.append(
                    Issue(
                        f"rules[{i}].inputPatterns[{j}]",
                        f"unknown pattern {name!r} (known: {known})",
                    )
                )
    for i, limit in enumerate(document.rateLimits):
        if (limit.ratePerSecond is None) == (limit.ratePerMinute is None):
            issues.append(
                Issue(f"rateLimits[{i}]", "give exactly one of ratePerSecond, ratePerMinute")
            )
    if issues:
        raise InvalidInput("invalid routing policy", issues)
    return patterns


def load_policy_file(path: str | Path) -> RoutingPolicy:
    """Read and validate a policy file (YAML or JSON)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read routing policy {path}: {exc}") from exc
    return RoutingPolicy.parse(text)


# -- where the policy comes from --------------------------------------------------------------


class PolicySource(Protocol):
    """Gives the policy in force; may cache."""

    async def current(self) -> RoutingPolicy: ...

    def invalidate(self) -> None: ...


class StaticPolicy:
    """A fixed policy (tests, embedded use)."""

    def __init__(self, policy: RoutingPolicy) -> None:
        self.policy = policy

    async def current(self) -> RoutingPolicy:
        return self.policy

    def invalidate(self) -> None:
        return None


class StoredPolicy:
    """The ``routing-policy`` document of the database, re-read at most every
    ``ttl`` seconds (and at once after :meth:`invalidate`). ``read`` runs the blocking
    store call (inline or in a thread)."""

    def __init__(
        self,
        read: Callable[[], Awaitable[Mapping[str, Any] | None]],
        *,
        ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._ttl = ttl
        self._clock = clock
        self._cached: tuple[float, RoutingPolicy] | None = None

    async def current(self) -> RoutingPolicy:
        now = self._clock()
        if self._cached is not None and now - self._cached[0] < self._ttl:
            return self._cached[1]
        document = await self._read()
        try:
            policy = RoutingPolicy.parse(document)
        except InvalidInput as exc:
            # fail closed: a broken stored policy must not let calls through unchecked
            raise AgentError(
                ErrorCode.ROUTING_SHOWSTOPPER,
                f"the stored routing policy is invalid: {exc}",
                retryable=True,
                details={"rule": "invalid-policy"},
            ) from exc
        self._cached = (now, policy)
        return policy

    def invalidate(self) -> None:
        self._cached = None


# -- the check before every call --------------------------------------------------------------


class Router:
    """Applies the policy in force to each call: rules, then rate limits; logs every
    decision; raises the ``routing_showstopper`` :class:`AgentError` of a denial, or waits
    for a rate-limit token when the limit allows waiting."""

    def __init__(
        self,
        source: PolicySource,
        *,
        limiter: RateLimiter | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.source = source
        self.limiter = limiter or RateLimiter()
        self._sleep = sleep

    async def check(self, call: Call, input: Any) -> Decision:
        policy = await self.source.current()
        decision = policy.decide(call, input)
        if decision.allowed:
            decision = self._take_tokens(policy, call, decision)
        log_decision(call, decision)
        if not decision.allowed:
            raise decision.error()
        if decision.wait > 0:
            await self._sleep(decision.wait)
        return decision

    def _take_tokens(self, policy: RoutingPolicy, call: Call, allowed: Decision) -> Decision:
        wait = 0.0
        taken: list[tuple[RateLimit, str]] = []
        for limit, key in policy.limits_for(call):
            reserved = self.limiter.reserve(
                limit.name, key, rate=limit.rate, burst=limit.size, max_wait=limit.maxWaitSeconds
            )
            if reserved is None:
                for earlier, earlier_key in taken:
                    self.limiter.release(earlier.name, earlier_key)
                per = "agent" if limit.scope == "agent" else "organization"
                return Decision(
                    False,
                    limit.name,
                    f"rate limit of {limit.rate:g}/s per {per} exceeded for {key}",
                    retryable=True,
                    details={"rateLimit": limit.name, "key": key},
                )
            taken.append((limit, key))
            wait = max(wait, reserved)
        if wait > 0:
            return Decision(True, allowed.rule, allowed.reason, wait=wait, details=allowed.details)
        return allowed


def log_decision(call: Call, decision: Decision) -> None:
    """One INFO line on ``podium.routing`` naming the rule (never the input)."""
    waited = f"; waits {decision.wait:.3g} s for a rate-limit token" if decision.wait else ""
    log.info(
        'routing %s: agent "%s" for organization "%s" by rule "%s" (%s%s) [run %s, step %s]',
        "allow" if decision.allowed else "deny",
        call.agent,
        call.organization,
        decision.rule,
        decision.reason,
        waited,
        call.run_id or "-",
        call.step_id or "-",
        extra={
            "routing": {
                "decision": "allow" if decision.allowed else "deny",
                "rule": decision.rule,
                "agent": call.agent,
                "organization": call.organization,
                "runId": call.run_id,
                "stepId": call.step_id,
            }
        },
    )
