"""Dashboard sessions and CSRF tokens.

Signing in with an API key sets a cookie that names the key (its public id, never the key
itself) and when the session ends, signed with HMAC-SHA256 under the server's session secret
(``PODIUM_SESSION_SECRET``; a random one per process when unset, which is enough for one
instance). Every request looks the key up again, so revoking the key ends its sessions at once.

Every form carries a CSRF token: an HMAC of the session's signature (or of ``anonymous`` in
keyless mode), checked in constant time on every POST.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

COOKIE = "podium_session"
SESSION_SECONDS = 12 * 3600
MAX_COOKIE_LENGTH = 1024


@dataclass(frozen=True)
class Session:
    key_id: str
    expires_at: int
    signature: str  # identifies this session for its CSRF token


class SessionCodec:
    """Signs and checks session cookies and CSRF tokens with one secret."""

    def __init__(self, secret: str | None) -> None:
        self._secret = (secret or secrets.token_urlsafe(32)).encode()

    def _sign(self, payload: bytes) -> str:
        digest = hmac.new(self._secret, payload, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def issue(self, key_id: str, *, now: float | None = None) -> str:
        """A cookie value for a session of ``key_id`` that lasts :data:`SESSION_SECONDS`."""
        expires = int((now or time.time()) + SESSION_SECONDS)
        body = json.dumps({"k": key_id, "e": expires}, separators=(",", ":")).encode()
        encoded = base64.urlsafe_b64encode(body).decode().rstrip("=")
        return f"v1.{encoded}.{self._sign(body)}"

    def read(self, value: str | None, *, now: float | None = None) -> Session | None:
        """The session in a cookie value, or None if it is missing, forged or expired."""
        if not value or len(value) > MAX_COOKIE_LENGTH:
            return None
        version, _, rest = value.partition(".")
        encoded, _, signature = rest.partition(".")
        if version != "v1" or not encoded or not signature:
            return None
        try:
            body = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return None
        if not hmac.compare_digest(self._sign(body), signature):
            return None
        if not isinstance(data, dict):
            return None
        key_id, expires = data.get("k"), data.get("e")
        if not isinstance(key_id, str) or not isinstance(expires, int):
            return None
        if expires <= (now or time.time()):
            return None
        return Session(key_id=key_id, expires_at=expires, signature=signature)

    def csrf_token(self, session: Session | None) -> str:
        """The CSRF token that forms of ``session`` (None: keyless mode) must carry."""
        subject = session.signature if session else "anonymous"
        return self._sign(f"csrf:{subject}".encode())

    def check_csrf(self, session: Session | None, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(session), token or "")
