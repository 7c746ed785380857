"""Authentication (targets K1, A1) and the per-caller rate limit (target L2).

Callers send ``Authorization: Bearer <key>``. The key is looked up on every request (no
cache), so a revoked key stops working with the next request. Keys are never logged.

Dashboard sessions: a request without an ``Authorization`` header may carry the dashboard's
session cookie (:mod:`podium.web.session`). It authenticates dashboard pages and forms (which
check a CSRF token), and API reads only (``GET``/``HEAD`` and WebSocket: the page's
``EventSource`` and WebSocket, which cannot send headers); never an API mutation, so a forged
cross-site request cannot act with it. A dashboard page without a session passes with no actor
and redirects to sign-in.

Development mode: when keys are not required (:func:`keys_required`), a request without an
``Authorization`` header acts with the local operator's rights in ``settings.organization``,
recorded under a name for the caller, ``anonymous@<client address>`` (never ``cli``, which
names the local command line); a request that does send a key is still authenticated with it.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode

import anyio
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from podium.api.limits import TokenBuckets
from podium.errors import Unauthorized
from podium.service.actors import Actor
from podium.settings import Settings
from podium.storage.store import SqlStore
from podium.web.session import COOKIE, SessionCodec

# Reachable without a key and not rate limited: probes and the API's own documentation.
PUBLIC_PATHS = frozenset(
    {
        "/healthz",
        "/readyz",
        "/metrics",  # issue 12: Prometheus scrapes without a key
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/openapi.json",
    }
)
MAX_KEY_LENGTH = 512
# the routes a stream ticket opens (POST /api/stream-tickets): one run's SSE or WebSocket
TICKET_PATH = re.compile(r"^/api/orchestrations/(?P<run>[^/]+)/(?:stream|ws)$")
SAFE_METHODS = frozenset({"GET", "HEAD"})


def is_api_path(path: str) -> bool:
    """Whether ``path`` belongs to the JSON API and operations endpoints (not the dashboard)."""
    return path.startswith("/api/") or path in PUBLIC_PATHS or path == "/metrics"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only accepts local connections."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name that may resolve to anything


def keys_required(settings: Settings) -> bool:
    """Keys are always required on non-loopback addresses; on loopback only when
    ``PODIUM_REQUIRE_KEYS`` is true."""
    return settings.require_keys is True or not is_loopback(settings.host)


def bearer_key(authorization: str) -> str:
    """The key in an ``Authorization: Bearer <key>`` header value."""
    scheme, _, key = authorization.strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise Unauthorized("the Authorization header must read 'Bearer <API key>'")
    if len(key) > MAX_KEY_LENGTH or not key.isascii():
        raise Unauthorized("the API key is not valid")
    return key


def session_actor(store: SqlStore, sessions: SessionCodec, cookie: str | None) -> Actor | None:
    """The actor of a valid dashboard session whose key is still live, or None."""
    session = sessions.read(cookie)
    if session is None:
        return None
    record = store.live_key(session.key_id)
    if record is None:
        return None
    return Actor(
        organization=record.organization_slug, role=record.role, name=record.name, key_id=record.id
    )


def authenticate(store: SqlStore, authorization: str) -> Actor:
    """The actor of a live key; :class:`Unauthorized` for an unknown, wrong or revoked key."""
    record = store.authenticate(bearer_key(authorization))
    if record is None:
        raise Unauthorized("the API key is not valid or has been revoked")
    return Actor(
        organization=record.organization_slug, role=record.role, name=record.name, key_id=record.id
    )


class AccessGate:
    """Attach the calling :class:`Actor` to ``scope["state"]["actor"]``, then apply the rate
    limit: per key, or per client address for requests without one. Failed authentications
    also count against the client address, which bounds key guessing.

    Raises :class:`Unauthorized` or :class:`RateLimited`; the outer
    :class:`~podium.api.errors.ProblemGuard` turns them into responses.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        required: bool,
        organization: str,
        store: Callable[[], SqlStore],
        buckets: TokenBuckets,
        sessions: SessionCodec | None = None,
    ) -> None:
        self.app = app
        self.sessions = sessions
        self.required = required
        self.local = Actor.local(organization)
        self.store = store
        self.buckets = buckets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = f"address:{client[0] if client else 'unknown'}"
        headers = Headers(scope=scope)
        authorization = headers.get("authorization")
        web = not is_api_path(scope["path"])
        actor: Actor | None = None
        ticket = take_ticket(scope) if authorization is None else None
        if ticket is not None:
            actor = await anyio.to_thread.run_sync(redeem, self.store(), ticket, scope["path"])
            if actor is None:
                self.buckets.check(address)
                raise Unauthorized("the stream ticket is not valid, was used, or has expired")
        elif (
            authorization is None
            and self.sessions is not None
            and COOKIE in (headers.get("cookie") or "")
        ):
            reads = scope["type"] == "websocket" or scope.get("method") in SAFE_METHODS
            if web or reads:
                actor = await anyio.to_thread.run_sync(
                    session_actor, self.store(), self.sessions, _cookie(headers)
                )
        if actor is not None:
            pass
        elif authorization is None and not self.required:
            host = client[0] if client else "unknown"
            actor = dataclasses.replace(self.local, name=f"anonymous@{host}")
        elif authorization is None and web:
            self.buckets.check(address)
            scope.setdefault("state", {})["actor"] = None  # the page redirects to sign-in
            await self.app(scope, receive, send)
            return
        elif authorization is None:
            self.buckets.check(address)
            raise Unauthorized("an API key is required: send 'Authorization: Bearer <key>'")
        else:
            try:
                actor = await anyio.to_thread.run_sync(authenticate, self.store(), authorization)
            except Unauthorized:
                self.buckets.check(address)
                raise
        self.buckets.check(f"key:{actor.key_id}" if actor.key_id else address)
        scope.setdefault("state", {})["actor"] = actor
        await self.app(scope, receive, send)


def take_ticket(scope: Scope) -> str | None:
    """Remove ``ticket=`` from the query string of a stream request (so that no log shows
    it) and return it; None when there is none or the path is not a stream."""
    if TICKET_PATH.match(scope["path"]) is None:
        return None
    query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    tickets = [v for k, v in query if k == "ticket"]
    if not tickets:
        return None
    scope["query_string"] = urlencode([(k, v) for k, v in query if k != "ticket"]).encode()
    ticket: str = tickets[0][:MAX_KEY_LENGTH]
    return ticket


def redeem(store: SqlStore, ticket: str, path: str) -> Actor | None:
    """The actor of a live ticket for the run in ``path`` (used up by this call), or None."""
    match = TICKET_PATH.match(path)
    grant = store.webhooks.redeem_ticket(ticket)
    if grant is None or match is None or match.group("run") != grant.run_id:
        return None
    return Actor(
        organization=grant.organization_slug,
        role=grant.role,
        name=grant.actor_name,
        key_id=grant.key_id,
    )


def _cookie(headers: Headers) -> str | None:
    """The session cookie's value in the request's ``Cookie`` header."""
    for part in (headers.get("cookie") or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return None
