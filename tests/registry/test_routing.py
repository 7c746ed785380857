"""The routing policy: every rule kind, both evaluation modes, the default PII patterns, rate
limits per agent and per organization, and the log line that names the rule."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from podium.agents.base import AgentError
from podium.agents.policy.patterns import BUILTIN_PATTERNS, iban_valid, luhn_valid, scan
from podium.agents.policy.ratelimit import RateLimiter
from podium.agents.policy.routing import Call, Decision, Router, RoutingPolicy, StaticPolicy
from podium.errors import InvalidInput

CARD = "4111 1111 1111 1111"  # a Visa test number (passes Luhn)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def call(
    agent: str = "echo",
    organization: str = "acme",
    *,
    kind: str = "python",
    skills: tuple[str, ...] = (),
    owner: str = "global",
) -> Call:
    return Call(organization, agent, owner, kind, skills, run_id="run-1", step_id="s1")


def router(document: dict[str, Any], clock: Clock | None = None) -> tuple[Router, list[float]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    limiter = RateLimiter(clock or Clock())
    return Router(StaticPolicy(RoutingPolicy.parse(document)), limiter=limiter, sleep=sleep), slept


async def denied(r: Router, c: Call, input: Any = None) -> AgentError:
    with pytest.raises(AgentError) as caught:
        await r.check(c, input)
    assert caught.value.code == "routing_showstopper"
    return caught.value


def routing_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "podium.routing" and r.levelno == logging.INFO
    ]


@pytest.fixture(autouse=True)
def _info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="podium.routing")


# -- rules --------------------------------------------------------------------------------------


async def test_without_rules_every_call_is_allowed_by_the_default_rule(
    caplog: pytest.LogCaptureFixture,
) -> None:
    r, _ = router({})
    decision = await r.check(call(), {"text": "hi"})
    assert (decision.allowed, decision.rule) == (True, "default")
    assert routing_lines(caplog) == [
        'routing allow: agent "echo" for organization "acme" by rule "default" '
        "(no rules configured) [run run-1, step s1]"
    ]


async def test_deny_by_organization_names_the_rule(caplog: pytest.LogCaptureFixture) -> None:
    r, _ = router({"rules": [{"name": "no-globex", "effect": "deny", "organizations": ["globex"]}]})
    error = await denied(r, call(organization="globex"))
    assert error.message == 'denied by rule "no-globex" (organization "globex", agent "echo")'
    assert error.retryable is False
    assert error.details["rule"] == "no-globex"
    assert (await r.check(call(organization="acme"), None)).rule == "default"
    lines = routing_lines(caplog)
    assert lines[0].startswith(
        'routing deny: agent "echo" for organization "globex" by rule "no-globex"'
    )
    assert lines[1].startswith(
        'routing allow: agent "echo" for organization "acme" by rule "default"'
    )


async def test_deny_by_agent_slug_glob_and_kind() -> None:
    r, _ = router(
        {
            "rules": [
                {"name": "no-external", "effect": "deny", "agents": ["ext-*"], "kinds": ["a2a"]},
            ]
        }
    )
    error = await denied(r, call("ext-translator", kind="a2a"))
    assert 'rule "no-external"' in error.message
    assert (await r.check(call("ext-translator", kind="python"), None)).allowed
    assert (await r.check(call("internal", kind="a2a"), None)).allowed


async def test_deny_by_skill_from_the_agent_card(caplog: pytest.LogCaptureFixture) -> None:
    r, _ = router(
        {"rules": [{"name": "no-translation", "effect": "deny", "skills": ["translat*"]}]}
    )
    error = await denied(r, call("translator", kind="a2a", skills=("translate", "Translate text")))
    assert error.message == (
        'denied by rule "no-translation" '
        '(organization "acme", agent "translator", skill "translate")'
    )
    assert error.details["skill"] == "translate"
    assert (await r.check(call("summarizer", kind="a2a", skills=("summarize",)), None)).allowed
    assert (await r.check(call("echo"), None)).allowed  # no card, no skills
    assert 'by rule "no-translation"' in routing_lines(caplog)[0]


async def test_allow_rules_with_a_default_deny(caplog: pytest.LogCaptureFixture) -> None:
    r, _ = router(
        {
            "default": "deny",
            "rules": [
                {"name": "acme-internal", "effect": "allow", "organizations": ["acme"]},
                {"name": "summaries-for-all", "effect": "allow", "skills": ["summarize"]},
            ],
        }
    )
    assert (await r.check(call(organization="acme"), None)).rule == "acme-internal"
    allowed = await r.check(call("sum", organization="globex", skills=("summarize",)), None)
    assert allowed.rule == "summaries-for-all"
    error = await denied(r, call(organization="globex"))
    assert error.message == 'denied by rule "default" (no rule matched)'
    assert [line.split(" by rule ")[1].split(" ")[0] for line in routing_lines(caplog)] == [
        '"acme-internal"',
        '"summaries-for-all"',
        '"default"',
    ]


async def test_first_match_lets_an_earlier_allow_win_and_deny_overrides_does_not() -> None:
    rules = [
        {"name": "trusted-acme", "effect": "allow", "organizations": ["acme"]},
        {"name": "no-ext", "effect": "deny", "agents": ["ext-*"]},
    ]
    first, _ = router({"mode": "first-match", "rules": rules})
    assert (await first.check(call("ext-a"), None)).rule == "trusted-acme"
    overrides, _ = router({"mode": "deny-overrides", "rules": rules})
    assert 'rule "no-ext"' in (await denied(overrides, call("ext-a"))).message
    assert (await overrides.check(call("int-a"), None)).rule == "trusted-acme"


# -- input patterns -----------------------------------------------------------------------------

PII_RULE = {
    "name": "no-pii-to-external",
    "effect": "deny",
    "kinds": ["a2a"],
    "inputPatterns": ["card-number", "us-ssn", "iban", "email"],
}


async def test_pattern_deny_names_the_pattern_and_path_and_never_logs_the_input(
    caplog: pytest.LogCaptureFixture,
) -> None:
    r, _ = router({"rules": [PII_RULE]})
    error = await denied(r, call("ext", kind="a2a"), {"userMessage": f"pay with {CARD} please"})
    assert error.message == (
        'denied by rule "no-pii-to-external" (pattern card-number matched input.userMessage)'
    )
    assert error.details == {
        "rule": "no-pii-to-external",
        "pattern": "card-number",
        "path": "input.userMessage",
    }
    assert "pattern card-number matched input.userMessage" in routing_lines(caplog)[0]
    assert "4111" not in caplog.text
    assert "pay with" not in caplog.text


@pytest.mark.parametrize(
    ("input", "pattern", "path"),
    [
        ({"userMessage": "card 4111-1111-1111-1111"}, "card-number", "input.userMessage"),
        ({"n": 4012888888881881}, "card-number", "input.n"),
        ({"items": ["fine", {"note": "ssn 123-45-6789"}]}, "us-ssn", "input.items[1].note"),
        ({"text": "IBAN GB82 WEST 1234 5698 7654 32"}, "iban", "input.text"),
        ({"text": "DE89370400440532013000"}, "iban", "input.text"),
        ("write to jane.doe@example.com", "email", "input"),
        ({"odd key": "x@y.io"}, "email", "input['odd key']"),
    ],
)
async def test_each_default_pii_pattern_is_detected_when_switched_on(
    input: Any, pattern: str, path: str
) -> None:
    r, _ = router({"rules": [PII_RULE]})
    error = await denied(r, call("ext", kind="a2a"), input)
    assert (error.details["pattern"], error.details["path"]) == (pattern, path)


@pytest.mark.parametrize(
    "input",
    [
        {"text": "4111 1111 1111 1112"},  # fails Luhn
        {"text": "order 1234567890123"},  # fails Luhn
        {"text": "000-12-3456 and 666-12-3456 and 123-00-4567"},  # never issued
        {"text": "GB82 WEST 1234 5698 7654 33"},  # fails mod 97
        {"text": "no personal data here", "count": 3, "ok": True},
    ],
)
async def test_look_alikes_that_fail_the_checks_pass(input: Any) -> None:
    r, _ = router({"rules": [PII_RULE]})
    assert (await r.check(call("ext", kind="a2a"), input)).allowed


async def test_pii_patterns_are_off_until_a_rule_names_them() -> None:
    r, _ = router({"rules": [{"name": "no-ext", "effect": "deny", "agents": ["nothing"]}]})
    decision = await r.check(call("ext", kind="a2a"), {"text": f"{CARD} 123-45-6789 a@b.io"})
    assert decision.allowed
    only_ssn, _ = router({"rules": [{**PII_RULE, "inputPatterns": ["us-ssn"]}]})
    assert (await only_ssn.check(call("ext", kind="a2a"), {"text": CARD})).allowed


async def test_a_custom_pattern_can_be_defined_and_named() -> None:
    r, _ = router(
        {
            "patterns": {"project-code": r"PRJ-\d{6}"},
            "rules": [{"name": "no-projects", "effect": "deny", "inputPatterns": ["project-code"]}],
        }
    )
    error = await denied(r, call(), {"text": "see PRJ-123456"})
    assert error.message == 'denied by rule "no-projects" (pattern project-code matched input.text)'


def test_checksums() -> None:
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")
    assert iban_valid("GB82WEST12345698765432")
    assert not iban_valid("GB82WEST12345698765431")
    assert scan({"a": ["x", "y"]}, list(BUILTIN_PATTERNS.values())) is None


# -- rate limits --------------------------------------------------------------------------------


async def test_rate_limit_per_agent_denies_beyond_the_burst_then_refills(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    r, _ = router(
        {
            "rateLimits": [
                {
                    "name": "translator-budget",
                    "scope": "agent",
                    "agents": ["translator"],
                    "ratePerSecond": 1,
                    "burst": 2,
                }
            ]
        },
        clock,
    )
    translator = call("translator")
    assert (await r.check(translator, None)).allowed
    assert (await r.check(call("translator", organization="globex"), None)).allowed
    error = await denied(r, translator)
    assert error.message == (
        'denied by rule "translator-budget" '
        "(rate limit of 1/s per agent exceeded for global/translator)"
    )
    assert error.retryable is True
    assert (await r.check(call("echo"), None)).allowed  # another agent: not counted
    clock.now += 1.0
    assert (await r.check(translator, None)).allowed
    assert (
        'routing deny: agent "translator" for organization "acme" by rule "translator-budget"'
        in (routing_lines(caplog)[2])
    )


async def test_rate_limit_per_organization_keeps_one_bucket_per_organization() -> None:
    clock = Clock()
    r, _ = router(
        {
            "rateLimits": [
                {"name": "per-org", "scope": "organization", "ratePerMinute": 60, "burst": 1}
            ]
        },
        clock,
    )
    assert (await r.check(call("a", organization="acme"), None)).allowed
    error = await denied(r, call("b", organization="acme"))
    assert 'rule "per-org"' in error.message
    assert "per organization exceeded for acme" in error.message
    assert (await r.check(call("a", organization="globex"), None)).allowed


async def test_rate_limit_with_max_wait_waits_for_the_next_token() -> None:
    clock = Clock()
    r, slept = router(
        {
            "rateLimits": [
                {
                    "name": "smooth",
                    "scope": "agent",
                    "ratePerSecond": 2,
                    "burst": 1,
                    "maxWaitSeconds": 1,
                }
            ]
        },
        clock,
    )
    assert (await r.check(call(), None)).wait == 0
    second = await r.check(call(), None)
    assert second.allowed
    assert second.wait == pytest.approx(0.5)
    assert slept == [pytest.approx(0.5)]
    third = await r.check(call(), None)  # reserved behind the second
    assert third.wait == pytest.approx(1.0)
    await denied(r, call())  # would wait 1.5 s > maxWaitSeconds


async def test_a_denied_rule_takes_no_rate_limit_token() -> None:
    clock = Clock()
    r, _ = router(
        {
            "rules": [{"name": "no-ext", "effect": "deny", "agents": ["ext"]}],
            "rateLimits": [
                {"name": "one", "scope": "organization", "ratePerSecond": 1, "burst": 1}
            ],
        },
        clock,
    )
    await denied(r, call("ext"))
    assert (await r.check(call("echo"), None)).allowed


# -- the document -------------------------------------------------------------------------------


def test_an_invalid_policy_reports_every_problem_with_its_path() -> None:
    with pytest.raises(InvalidInput) as caught:
        RoutingPolicy.parse(
            {
                "patterns": {"email": "x", "broken": "(", "ok": "a+"},
                "rules": [
                    {"name": "default", "effect": "deny"},
                    {"name": "twice", "effect": "deny", "inputPatterns": ["ok", "passport"]},
                    {"name": "twice", "effect": "allow"},
                ],
                "rateLimits": [
                    {"name": "both", "scope": "agent", "ratePerSecond": 1, "ratePerMinute": 60}
                ],
            }
        )
    paths = [i.path for i in caught.value.issues]
    assert paths == [
        "patterns.email",
        "patterns.broken",
        "rules[0].name",
        "rules[2].name",
        "rules[1].inputPatterns[1]",
        "rateLimits[0]",
    ]


def test_schema_errors_name_their_path() -> None:
    with pytest.raises(InvalidInput) as caught:
        RoutingPolicy.parse({"mode": "last-match", "rules": [{"name": "r", "effect": "maybe"}]})
    assert {i.path for i in caught.value.issues} == {"mode", "rules[0].effect"}


def test_a_policy_reads_from_yaml_and_round_trips() -> None:
    policy = RoutingPolicy.parse(
        "mode: deny-overrides\nrules:\n  - {name: r1, effect: deny, agents: [x]}\n"
    )
    again = RoutingPolicy.parse(policy.to_document())
    assert again.to_document() == policy.to_document()
    assert policy.to_document()["rules"] == [{"name": "r1", "effect": "deny", "agents": ["x"]}]


def test_decision_error_is_a_routing_showstopper() -> None:
    error = Decision(False, "r", "why").error()
    assert (error.code, error.retryable, error.message) == (
        "routing_showstopper",
        False,
        'denied by rule "r" (why)',
    )


def test_text_a_database_cannot_store_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        RoutingPolicy.parse(
            {
                "rules": [
                    {"name": "r", "effect": "deny", "description": "a\x00b", "agents": ["\udab3"]}
                ]
            }
        )
    assert {i.path for i in caught.value.issues} == {"rules[0].description", "rules[0].agents[0]"}
