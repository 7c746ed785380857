"""F1: Schemathesis against the OpenAPI document, in-process, with positive and negative data:
no 5xx, and every response conforms to the document (status, content type, headers, schema).

Deterministic and bounded: hypothesis is derandomized (the same examples on every run, so a
failure reproduces and a slow machine cannot make the generation flaky) and does not shrink,
and ``FUZZ_EXAMPLES`` per operation and mode keeps the test well below its timeout even on a
busy 2-core machine (about 25 s of CPU per database; ``PODIUM_SLOW=1`` or CI run 1.5 times
as many).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from podium.agents.base import AgentError
from podium.agents.registry.admission import AgentChecks
from podium.api.app import create_app
from podium.domain.definition import parse_definition
from podium.domain.outcomes import ErrorCode
from podium.engine.launcher import launch
from podium.events.webhooks.signing import new_secret
from podium.net.urlguard import UrlGuard
from podium.settings import Settings
from podium.storage.store import SqlStore
from tests.api.helpers import ECHO, FAILING, bearer
from tests.conftest import SLOW

FUZZ_EXAMPLES = 15 if SLOW else 10
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]


@pytest.fixture
def lifespans() -> Iterator[None]:
    """Schemathesis runs each app's lifespan once per process: end it with the test."""
    yield
    asgi.shutdown_lifespans()


CHECKPOINTED = """
metadata: {name: reviewed, version: 1.0.0}
orchestration:
  steps:
    - id: draft
      agent: echo
      input: {text: "a draft"}
      checkpoint_after: {question: "Publish?", options: [continue, retry, abort]}
"""


def pending_approval(store: SqlStore, settings: Settings) -> str:
    """The id of a real pending approval (a run taken to its checkpoint by a worker)."""
    from tests.support import running_worker, wait_for

    run_id = launch(store, parse_definition(CHECKPOINTED), {}, organization="acme")

    async def reach() -> None:
        async with running_worker(store, settings):
            await wait_for(lambda: store.pending_approvals(run_id), bool)

    asyncio.run(reach())
    return store.pending_approvals(run_id)[0].id


def seeded(store: SqlStore, settings: Settings) -> dict[str, str]:
    """Objects for the fuzzer to find: definitions, a run with steps and events, an
    approval, a webhook endpoint with a delivery, an API key (not the fuzzer's own, which
    revoking would lock it out with)."""
    for doc in (ECHO, FAILING):
        store.push_definition("acme", parse_definition(doc))
    hooks = store.webhooks
    # 192.0.2.1 (TEST-NET-1) is never sent to: no dispatcher runs here
    hook = hooks.create_endpoint(
        organization="acme", url="http://192.0.2.1/hook", secret=new_secret()
    )
    run_id = launch(store, parse_definition(ECHO), {"who": "fuzz"}, organization="acme")
    store.abort(run_id, actor="fuzz")  # ended, so that its event stream ends too
    step = store.steps_of(run_id)[0]
    store.add_agent(
        organization="acme",
        slug="fuzzed",
        kind="python",
        target="podium.agents.demo:echo",
        active=True,
    )
    return {
        "runId": run_id,
        "stepRecordId": step.id,
        "name": "greet",
        "version": "1.0.0",
        "slug": "fuzzed",
        "endpointId": hook.id,
        "deliveryId": hooks.list_deliveries("acme")[0].id,
        "approvalId": pending_approval(store, settings),
        "keyId": store.create_key(organization="acme", role="viewer", name="fuzzed")[0].id,
    }


def no_dns(host: str, port: int) -> list[str]:
    """Fuzzed agent URLs name made-up hosts: answer with a public documentation address
    (TEST-NET-3) instead of asking DNS, so that the guard admits them."""
    return ["203.0.113.7"]


async def no_card(url: str, guard: UrlGuard) -> dict[str, Any]:
    """Never reach out: a fuzzed registration finds no card (no traffic leaves loopback)."""
    raise AgentError(ErrorCode.AGENT_UNREACHABLE, f"no card fetched for {url} in this test")


# Validation answers 200 with the issues for any document, also one that breaks the schema
# of a definition document: that is its purpose, not accepted negative data.
ANSWERS_INVALID_DATA = {"POST /api/definitions/validate"}
# On reads, only query parameters can be made invalid, and schemathesis sometimes makes one
# that serialisation then drops (an extra parameter holding an empty array): the request that
# reaches the API is valid and its 200 is reported as accepted negative data. Reads still get
# negative data; they are checked for 5xx and schema conformance, and their query validation
# has tests of its own (tests/api/test_runs_api.py).


def fuzz(operation: Any, mode: GenerationMode, headers: dict[str, str], **fixed: Any) -> None:
    checks = [
        c
        for c in CHECKS
        if not (
            c is negative_data_rejection
            and (operation.label in ANSWERS_INVALID_DATA or operation.method.upper() == "GET")
        )
    ]

    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    @hypothesis_settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        print_blob=False,
    )
    def one(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=checks)

    try:
        one()
    except Unsatisfiable:
        # nothing to make invalid: an operation without parameters or body
        assert mode is GenerationMode.NEGATIVE, operation.label


def test_the_api_conforms_to_its_openapi_document(
    store: SqlStore, settings: Settings, lifespans: None
) -> None:
    """F1."""
    ids = seeded(store, settings)
    _, key = store.create_key(organization="acme", role="admin", name="fuzzer")
    app = create_app(settings, store=store, worker=False)
    app.state.agent_checks = AgentChecks(url_guard=UrlGuard(resolver=no_dns), fetch_card=no_card)
    app.state.webhook_guard = UrlGuard(resolver=no_dns, subject="WEBHOOK")
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 19
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz(operation, mode, bearer(key))
        names = {p.name for p in operation.path_parameters}
        if names:  # also on objects that exist, so that their 200 responses are checked
            fixed = {name: ids[name] for name in names}
            fuzz(operation, GenerationMode.POSITIVE, bearer(key), path_parameters=fixed)
