"""The pure parts of webhooks: event filters, signatures (checked against the Standard
Webhooks reference library), retry delays, payload truncation, configuration."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from podium.domain.webhooks import check_event_filter, matches_endpoint, matches_event
from podium.errors import ConfigurationError, InvalidInput
from podium.events.webhooks import payload, signing
from podium.events.webhooks.client import next_delay, retry_after
from podium.events.webhooks.config import WebhookSettings, parse_schedule
from podium.events.webhooks.dispatcher import RateLimits
from podium.storage.records import EventRecord


def test_event_filters_match_exact_names_and_prefixes() -> None:
    assert matches_event([], "orchestration.step.failed")
    assert matches_event(["orchestration.run.*"], "orchestration.run.completed")
    assert not matches_event(["orchestration.run.*"], "orchestration.step.failed")
    assert matches_event(["orchestration.step.failed"], "orchestration.step.failed")
    assert not matches_event(["orchestration.step.fail"], "orchestration.step.failed")
    assert check_event_filter("orchestration.run.*") is None
    assert check_event_filter("orchestration.*.failed") is not None
    assert check_event_filter("") is not None


def test_endpoint_scope_organization_and_definition() -> None:
    kwargs = {"event_type": "orchestration.run.created", "definition": "nightly"}
    assert matches_endpoint("acme", [], None, organization="acme", **kwargs)  # type: ignore[arg-type]
    assert not matches_endpoint("acme", [], None, organization="globex", **kwargs)  # type: ignore[arg-type]
    assert matches_endpoint("*", [], None, organization="globex", **kwargs)  # type: ignore[arg-type]
    assert not matches_endpoint("acme", [], ["other"], organization="acme", **kwargs)  # type: ignore[arg-type]


def test_signatures_verify_with_the_reference_library() -> None:
    """W1: our signature is the one standardwebhooks computes and accepts."""
    secret = signing.new_secret()
    assert secret.startswith("whsec_")
    assert len(signing.secret_key(secret)) == 32
    now = int(datetime.now(UTC).timestamp())
    body = json.dumps({"hello": "wörld"}, ensure_ascii=False).encode()
    headers = signing.headers([secret], "msg_1", now, body)
    assert Webhook(secret).verify(body, headers) == {"hello": "wörld"}
    assert headers["webhook-signature"] == Webhook(secret).sign(
        "msg_1", datetime.fromtimestamp(now, UTC), body.decode()
    )


def test_both_secrets_sign_during_a_rotation() -> None:
    old, new = signing.new_secret(), signing.new_secret()
    now = int(datetime.now(UTC).timestamp())
    headers = signing.headers([new, old], "msg_2", now, b"{}")
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(b"{}", headers)
    Webhook(new).verify(b"{}", headers)


@pytest.mark.parametrize("bad", ["nope", "whsec_!!!", "whsec_" + "QUFB"])
def test_bad_secrets_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        signing.check_secret(bad)


def test_retry_delays_follow_the_schedule_with_jitter() -> None:
    schedule = (5.0, 30.0)
    assert next_delay(schedule, 1, 0.0) == pytest.approx(4.0)
    assert next_delay(schedule, 1, 0.5) == pytest.approx(5.0)
    assert next_delay(schedule, 2, 0.999) == pytest.approx(35.988)
    assert next_delay(schedule, 3, 0.5) is None  # three attempts: two delays


def test_retry_after_seconds_and_dates() -> None:
    now = datetime(2025, 1, 31, 12, 0, tzinfo=UTC)
    assert retry_after("120", now) == 120
    assert retry_after("Fri, 31 Jan 2025 12:01:00 GMT", now) == 60
    assert retry_after("soon", now) is None
    assert retry_after("99999999", now) == 86400


def test_schedule_and_settings_from_the_environment() -> None:
    assert parse_schedule("5s,30s,2m,1h") == (5.0, 30.0, 120.0, 3600.0)
    settings = WebhookSettings.from_env({})
    assert settings.retry_schedule == (5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0)
    assert settings.max_attempts == 9
    assert settings.disable_after_seconds == 3 * 86400
    assert settings.rotation_overlap_seconds == 86400
    with pytest.raises(ConfigurationError, match="PODIUM_WEBHOOK_RETRY_SCHEDULE"):
        WebhookSettings.from_env({"PODIUM_WEBHOOK_RETRY_SCHEDULE": "5 parsecs"})
    with pytest.raises(ConfigurationError, match="SECRET"):
        WebhookSettings.from_env({"ORCHESTRATION_PROGRESS_WEBHOOK_URL": "https://x.example"})


def _event(data: dict[str, object]) -> EventRecord:
    return EventRecord(
        id="e1",
        run_id="r1",
        sequence=7,
        type="orchestration.step.completed",
        organization_slug="acme",
        timestamp=datetime(2025, 1, 31, tzinfo=UTC),
        step_id="fetch",
        step_record_id="s1",
        data=data,
    )


def test_large_values_are_truncated_to_keep_the_body_under_64_kb() -> None:
    big = {"status": "completed", "output": {"page": "x" * 200_000, "title": "kept"}}
    body = payload.body(_event(big), "https://podium.example")
    assert len(body) < payload.MAX_BODY_BYTES
    sent = json.loads(body)
    assert sent["data"]["status"] == "completed"
    assert sent["data"]["output"]["title"] == "kept"
    marker = sent["data"]["output"]["page"]
    assert marker["truncated"] is True
    assert marker["sizeBytes"] > 200_000
    assert marker["link"] == "https://podium.example/api/orchestrations/r1/steps/s1"
    small = json.loads(payload.body(_event({"status": "completed"})))
    assert small["data"] == {"status": "completed"}
    assert small["links"]["step"] == "/api/orchestrations/r1/steps/s1"


def test_rate_limits_admit_a_second_of_burst_then_refill() -> None:
    now = [0.0]
    limits = RateLimits(clock=lambda: now[0])
    assert [limits.admit("e", 2) for _ in range(3)] == [True, True, False]
    now[0] += 0.5
    assert limits.admit("e", 2)
    assert limits.admit("other", None)
