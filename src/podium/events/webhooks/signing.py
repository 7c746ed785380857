"""Standard Webhooks signatures (target W1): ``v1,`` + base64 HMAC-SHA256 of
``id.timestamp.body`` under each live secret, space-separated."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence

from podium.errors import InvalidInput, Issue

SECRET_PREFIX = "whsec_"  # noqa: S105  # the Standard Webhooks prefix, not a secret
SECRET_BYTES = 32


def new_secret() -> str:
    """A fresh endpoint secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret (the bytes its base64 part encodes)."""
    body = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret
    return base64.b64decode(body, validate=True)


def check_secret(secret: str, field_name: str = "secret") -> str:
    """``secret`` if it is ``whsec_`` + base64 of 24 to 64 bytes; InvalidInput otherwise."""
    problem = None
    if not secret.startswith(SECRET_PREFIX):
        problem = "must start with whsec_"
    else:
        try:
            size = len(secret_key(secret))
        except ValueError:
            problem = "must be whsec_ followed by base64"
        else:
            if not 24 <= size <= 64:
                problem = "must encode 24 to 64 random bytes"
    if problem:
        raise InvalidInput("the webhook secret is not valid", [Issue(field_name, problem)])
    return secret


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<signature>`` for ``body`` sent as ``message_id`` at ``timestamp``."""
    content = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(secrets_: Sequence[str], message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: one signature per live secret (rotation overlap)."""
    return " ".join(sign(s, message_id, timestamp, body) for s in secrets_)


def headers(
    secrets_: Sequence[str], message_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets_, message_id, timestamp, body),
        "content-type": "application/json",
    }
