"""A server's problem+json becomes the :class:`PodiumError` it stands for, also for error
classes whose constructors take arguments of their own."""

from __future__ import annotations

import httpx
import pytest

from podium.client.problems import problem_error
from podium.errors import InvalidInput, NotFound, PodiumError, RateLimited, ValueTooDeep
from podium.net.urlguard import UrlNotAllowed


def response(status: int, body: dict[str, object], **headers: str) -> httpx.Response:
    request = httpx.Request("POST", "http://podium.test/api/admin/agents")
    return httpx.Response(status, json=body, headers=headers, request=request)


@pytest.mark.parametrize(
    ("code", "cls"),
    [("url_not_allowed", UrlNotAllowed), ("value_too_deep", ValueTooDeep)],
)
def test_an_input_error_with_a_constructor_of_its_own_keeps_its_class_and_issues(
    code: str, cls: type[InvalidInput]
) -> None:
    problem = {
        "status": 422,
        "code": code,
        "detail": "'http://10.0.0.1/' resolves to 10.0.0.1, a private address",
        "issues": [{"path": "url", "message": "resolves to 10.0.0.1, a private address"}],
    }
    exc = problem_error(response(422, problem))
    assert type(exc) is cls
    assert isinstance(exc, InvalidInput)
    assert exc.message == problem["detail"]
    assert [str(i) for i in exc.issues] == ["url: resolves to 10.0.0.1, a private address"]


def test_known_codes_unknown_codes_and_rate_limits() -> None:
    found = problem_error(response(404, {"code": "not_found", "detail": "agent x not found"}))
    assert (type(found), found.message) == (NotFound, "agent x not found")
    other = problem_error(response(500, {"code": "something_new", "detail": "boom"}))
    assert (type(other), other.message) == (PodiumError, "boom")
    limited = problem_error(response(429, {"detail": "slow down"}, **{"Retry-After": "7"}))
    assert isinstance(limited, RateLimited)
    assert limited.retry_after == 7.0
