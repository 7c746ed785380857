"""Outbound URL guard (target N1): keep agent (and webhook) calls away from internal networks.

A URL is refused when its host *resolves* to an address that is not publicly routable:
loopback, private, link-local (such as the cloud metadata address ``169.254.169.254``),
unspecified, multicast, shared (CGNAT), reserved, or an IPv6 form that embeds one of these
(IPv4-mapped ``::ffff:a.b.c.d``, IPv4-compatible ``::a.b.c.d``, 6to4 ``2002::/16``, NAT64
``64:ff9b::/96``). Every address a host resolves to must pass, not just the first.

The check runs twice:

* at registration (:meth:`UrlGuard.check_url`), answering :class:`UrlNotAllowed` (a 422
  problem naming the resolved address);
* at connect time, in :class:`GuardedTransport`: it resolves the host itself, checks every
  address, and connects to the checked address (TLS still verifies the host name). A host
  that resolved to a public address at registration and to ``127.0.0.1`` later (DNS
  rebinding) is refused with :class:`AddressRefused`, an ``httpcore.ConnectError``.

Configuration (``from_env``; ``subject`` is ``AGENT`` or ``WEBHOOK``):

* ``PODIUM_ALLOW_PRIVATE_<subject>_URLS=1`` allows every non-public address except
  link-local, unspecified and multicast ones;
* ``PODIUM_<subject>_URL_ALLOWLIST`` lists comma-separated CIDRs or addresses, and the words
  ``loopback`` and ``private``, that are allowed.

Only an explicit CIDR in the allowlist admits a link-local address. The guarded transport
ignores proxy environment variables (a proxy would hide the address actually reached).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpcore
import httpx

from podium.errors import ConfigurationError, InvalidInput, Issue
from podium.settings import OutboundSubject, Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]
"""``(host, port) -> addresses``; blocking (the transport runs it in a thread)."""

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")
_NAMED: dict[str, tuple[IPNetwork, ...]] = {
    "loopback": (ipaddress.IPv4Network("127.0.0.0/8"), ipaddress.IPv6Network("::1/128")),
    "private": (
        ipaddress.IPv4Network("10.0.0.0/8"),
        ipaddress.IPv4Network("172.16.0.0/12"),
        ipaddress.IPv4Network("192.168.0.0/16"),
        ipaddress.IPv6Network("fc00::/7"),
    ),
}
# categories that PODIUM_ALLOW_PRIVATE_*_URLS does not open: the metadata service, and
# addresses that only make sense as a trick (0.0.0.0 reaches the local host on Linux)
_NEVER_BY_FLAG = frozenset({"link-local", "unspecified", "multicast"})


class UrlNotAllowed(InvalidInput):
    """A URL refused at registration: bad form, unresolvable, or resolving to an address
    that is not allowed. ``details`` carry ``resolvedAddress`` and ``reason`` when known."""

    code = "url_not_allowed"

    def __init__(
        self,
        message: str,
        *,
        field_name: str,
        issue: str | None = None,
        address: str | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message, [Issue(field_name, issue or message)])
        if address is not None:
            self.details["resolvedAddress"] = address
        if reason is not None:
            self.details["reason"] = reason


class AddressRefused(httpcore.ConnectError):
    """A connection refused by the guard at connect time (the host resolved to an address
    that is not allowed). Raised inside httpx, which reports it as ``httpx.ConnectError``;
    find it on the exception chain with :func:`refusal_in`."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        super().__init__(
            f"refused to connect to {host} at {address} ({reason} address; see N1: allow it "
            "with PODIUM_AGENT_URL_ALLOWLIST or PODIUM_ALLOW_PRIVATE_AGENT_URLS=1)"
        )
        self.host = host
        self.address = address
        self.reason = reason


def refusal_in(exc: BaseException) -> AddressRefused | None:
    """The :class:`AddressRefused` that caused ``exc`` (following ``__cause__`` and
    ``__context__``), or None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, AddressRefused):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, compatible, 6to4, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    value = int(ip)
    if value >> 32 == 0 and value > 1:  # deprecated IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(value)
    return None


def category(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public address (``loopback``, ``private``, ``link-local``, ...),
    or None when it is one. Embedded IPv4 addresses are judged by their IPv4 form."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = embedded_ipv4(ip)
        if inner is not None:
            return category(inner)
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED:
        return "shared"
    if ip.is_private:
        return "private"
    if ip.is_reserved or not ip.is_global:
        return "reserved"
    return None


def parse_allowlist(entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDRs, single addresses and the words ``loopback`` and ``private`` as networks;
    ``ValueError`` naming a bad entry."""
    networks: list[IPNetwork] = []
    for raw in entries:
        entry = raw.strip()
        if not entry:
            continue
        if entry in _NAMED:
            networks.extend(_NAMED[entry])
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as exc:
            raise ValueError(
                f"allowlist entry {entry!r} is not a CIDR, loopback or private"
            ) from exc
    return tuple(networks)


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (``socket.getaddrinfo``), without duplicates."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class UrlGuard:
    """Which addresses outbound calls may reach. The default refuses every non-public one."""

    allow_private: bool = False
    allowed: tuple[IPNetwork, ...] = ()
    resolver: Resolver = field(default=system_resolver, compare=False)
    subject: str = "AGENT"

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, subject: OutboundSubject = "AGENT"
    ) -> UrlGuard:
        """The guard configured by ``PODIUM_ALLOW_PRIVATE_<subject>_URLS`` and
        ``PODIUM_<subject>_URL_ALLOWLIST`` (see the module docstring)."""
        return cls.from_settings(Settings.from_env(environ), subject=subject)

    @classmethod
    def from_settings(cls, settings: Settings, *, subject: OutboundSubject = "AGENT") -> UrlGuard:
        """The guard that ``settings`` configure for ``subject``'s calls."""
        allow_private, allowlist = settings.outbound_urls(subject)
        try:
            allowed = parse_allowlist(allowlist)
        except ValueError as exc:
            raise ConfigurationError(f"PODIUM_{subject}_URL_ALLOWLIST: {exc}") from exc
        return cls(allow_private=allow_private, allowed=allowed, subject=subject)

    @classmethod
    def allowing_loopback(cls, base: UrlGuard | None = None) -> UrlGuard:
        """``base`` (default: the strict guard) that also admits loopback addresses, as
        development and the demo agents need."""
        base = base or cls()
        return cls(
            allow_private=base.allow_private,
            allowed=base.allowed + _NAMED["loopback"],
            resolver=base.resolver,
            subject=base.subject,
        )

    def refusal(self, address: str) -> str | None:
        """Why ``address`` may not be reached (its category), or None when it may."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
        reason = category(ip)
        if reason is None:
            return None
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and (inner := embedded_ipv4(ip)) is not None:
            candidates.append(inner)
        if any(c.version == n.version and c in n for c in candidates for n in self.allowed):
            return None
        if self.allow_private and reason not in _NEVER_BY_FLAG:
            return None
        return reason

    def check_address(self, host: str, address: str) -> None:
        """Raise :class:`AddressRefused` unless ``address`` (which ``host`` resolved to) may
        be reached."""
        reason = self.refusal(address)
        if reason is not None:
            raise AddressRefused(host, address, reason)

    def check_url(self, url: str, *, field_name: str = "url") -> list[str]:
        """Check a URL before it is stored: ``http``/``https``, a host, no credentials, and
        every address the host resolves to allowed. Returns the addresses; raises
        :class:`UrlNotAllowed` naming the first refused address. Blocks while resolving."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise UrlNotAllowed(
                f"{url!r} is not a valid URL: {exc}", field_name=field_name
            ) from exc
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise UrlNotAllowed(
                f"{url!r} must be an absolute http:// or https:// URL", field_name=field_name
            )
        if parsed.userinfo:
            raise UrlNotAllowed(
                f"{url!r} carries credentials; agent URLs must not", field_name=field_name
            )
        host = parsed.host
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            addresses = self.resolve(host, port)
        except OSError as exc:
            raise UrlNotAllowed(
                f"host {host!r} of {url!r} does not resolve: {exc}", field_name=field_name
            ) from exc
        for address in addresses:
            reason = self.refusal(address)
            if reason is not None:
                raise UrlNotAllowed(
                    f"{url!r} resolves to {address}, a {reason} address, which is not allowed; "
                    f"allow it with PODIUM_{self.subject}_URL_ALLOWLIST or "
                    f"PODIUM_ALLOW_PRIVATE_{self.subject}_URLS=1",
                    field_name=field_name,
                    issue=f"resolves to {address}, a {reason} address",
                    address=address,
                    reason=reason,
                )
        return addresses

    def resolve(self, host: str, port: int) -> list[str]:
        """The addresses of ``host`` (an IP literal is its own address); ``OSError`` when
        it does not resolve."""
        literal = host.strip("[]")
        try:
            return [str(ipaddress.ip_address(literal.split("%", 1)[0]))]
        except ValueError:
            pass
        addresses = self.resolver(host, port)
        if not addresses:
            raise OSError(f"no address for {host}")
        return addresses

    def transport(self, *, shared: bool = False, **kwargs: Any) -> GuardedTransport:
        """An httpx transport that checks the address of every connection it opens
        (``shared``: see :class:`GuardedTransport`)."""
        return GuardedTransport(self, shared=shared, **kwargs)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that resolves, checks and connects to the checked address."""

    def __init__(self, guard: UrlGuard, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._guard = guard
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109  # httpcore's backend signature
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await asyncio.to_thread(self._guard.resolve, host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        for address in addresses:  # every address must pass, as at registration
            self._guard.check_address(host, address)
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109  # httpcore's backend signature
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not allowed for guarded connections")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` whose connections go through :class:`GuardedBackend`.

    Takes the keyword arguments of ``httpx.AsyncHTTPTransport`` except ``proxy``, ``uds``
    and ``trust_env`` (connections are always direct). A ``shared`` transport serves many
    short-lived clients at once: closing a client leaves its connection pool open (closing
    it would break the other clients' requests in flight); its owner calls :meth:`close`."""

    def __init__(
        self,
        guard: UrlGuard,
        *,
        shared: bool = False,
        verify: ssl.SSLContext | bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: httpx.Limits | None = None,
        retries: int = 0,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        super().__init__(verify=verify, http1=http1, http2=http2, limits=limits, trust_env=False)
        self.guard = guard
        self.shared = shared
        # the parent builds its pool without a way to pass a network backend; replace it
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=http1,
            http2=http2,
            retries=retries,
            network_backend=GuardedBackend(guard),
        )

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        if not self.shared:
            await super().__aexit__(exc_type, exc_value, traceback)

    async def aclose(self) -> None:
        if not self.shared:
            await super().aclose()

    async def close(self) -> None:
        """Close the connection pool, shared or not."""
        await self._pool.aclose()
