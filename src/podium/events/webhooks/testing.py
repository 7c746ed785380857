"""The body of ``POST /api/admin/webhooks/:id/test`` (and ``podium webhooks test``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from podium.storage.webhooks import EndpointRecord

TEST_EVENT = "orchestration.webhook.test"


def build_test_body(message_id: str, endpoint: EndpointRecord, base: str = "") -> bytes:
    """A test event in the shape of every other event (``sequence`` 0, no run)."""
    envelope = {
        "id": message_id,
        "sequence": 0,
        "type": TEST_EVENT,
        "runId": None,
        "organizationSlug": endpoint.organization_slug,
        "timestamp": datetime.now(UTC).isoformat(),
        "data": {"endpointId": endpoint.id, "message": "a test event from Podium"},
        "links": {"endpoint": f"{base}/api/admin/webhooks/{endpoint.id}"},
    }
    return json.dumps(envelope, separators=(",", ":")).encode()
