"""N1: agent URLs that resolve to loopback, private, link-local or mapped forms of these are
refused unless allowed by configuration, at registration and at connect time."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from podium.errors import ConfigurationError
from podium.net.urlguard import (
    AddressRefused,
    UrlGuard,
    UrlNotAllowed,
    category,
    parse_allowlist,
    refusal_in,
)
from tests.registry.conftest import FakeDns, guard

REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("::1", "loopback"),
    ("10.0.0.1", "private"),
    ("10.255.255.254", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.254", "private"),
    ("192.168.1.10", "private"),
    ("169.254.169.254", "link-local"),
    ("fe80::1", "link-local"),
    ("fc00::1", "private"),
    ("0.0.0.0", "unspecified"),  # noqa: S104 - an address to judge, not to bind
    ("::", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("100.64.0.1", "shared"),
    ("192.0.2.1", "private"),  # documentation range
    ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
    ("::ffff:169.254.169.254", "link-local"),
    ("::ffff:10.0.0.1", "private"),
    ("::127.0.0.1", "loopback"),  # IPv4-compatible
    ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
    ("2002:a9fe:a9fe::1", "link-local"),  # 6to4 of 169.254.169.254
    ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
    ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
]
PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "172.32.0.1",
    "2606:4700:4700::1111",
    "2002:808:808::",
]


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_non_public_addresses_are_refused_with_their_category(address: str, reason: str) -> None:
    """N1."""
    assert UrlGuard().refusal(address) == reason


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address: str) -> None:
    assert category(ipaddress.ip_address(address)) is None
    assert UrlGuard().refusal(address) is None


def test_loopback_in_the_allowlist_admits_loopback_and_its_mapped_forms_only() -> None:
    g = UrlGuard(allowed=parse_allowlist(["loopback"]))
    assert g.refusal("127.0.0.1") is None
    assert g.refusal("::1") is None
    assert g.refusal("::ffff:127.0.0.1") is None
    assert g.refusal("10.0.0.1") == "private"
    assert g.refusal("169.254.169.254") == "link-local"


def test_a_cidr_in_the_allowlist_admits_that_network() -> None:
    g = UrlGuard(allowed=parse_allowlist(["10.1.0.0/16", "192.168.7.7"]))
    assert g.refusal("10.1.2.3") is None
    assert g.refusal("192.168.7.7") is None
    assert g.refusal("10.2.0.1") == "private"
    assert g.refusal("192.168.7.8") == "private"


def test_allow_private_opens_private_and_loopback_but_never_the_metadata_address() -> None:
    g = UrlGuard(allow_private=True)
    assert g.refusal("10.0.0.1") is None
    assert g.refusal("127.0.0.1") is None
    assert g.refusal("169.254.169.254") == "link-local"
    assert g.refusal("0.0.0.0") == "unspecified"  # noqa: S104 - judged, not bound
    explicit = UrlGuard(allow_private=True, allowed=parse_allowlist(["169.254.169.254/32"]))
    assert explicit.refusal("169.254.169.254") is None


def test_configuration_comes_from_the_environment() -> None:
    g = UrlGuard.from_env(
        {
            "PODIUM_ALLOW_PRIVATE_AGENT_URLS": "1",
            "PODIUM_AGENT_URL_ALLOWLIST": "loopback, 10.0.0.0/8",
        }
    )
    assert g.allow_private
    assert g.refusal("10.9.9.9") is None
    assert not UrlGuard.from_env({}).allow_private
    webhooks = UrlGuard.from_env({"PODIUM_WEBHOOK_URL_ALLOWLIST": "loopback"}, subject="WEBHOOK")
    assert webhooks.refusal("127.0.0.1") is None
    with pytest.raises(ConfigurationError, match="PODIUM_AGENT_URL_ALLOWLIST"):
        UrlGuard.from_env({"PODIUM_AGENT_URL_ALLOWLIST": "intranet"})


# -- at registration ----------------------------------------------------------------------------


def test_registration_refuses_a_host_resolving_to_loopback_naming_the_address() -> None:
    """N1: at registration."""
    g = guard(FakeDns({"agent.example": ["93.184.216.34", "127.0.0.1"]}))
    with pytest.raises(UrlNotAllowed) as caught:
        g.check_url("https://agent.example/a2a")
    assert "127.0.0.1" in caught.value.message
    assert caught.value.details["resolvedAddress"] == "127.0.0.1"
    assert caught.value.details["reason"] == "loopback"
    assert caught.value.issues[0].path == "url"


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0:9700/",
        "http://10.0.0.5/",
    ],
)
def test_registration_refuses_address_literals_without_asking_dns(url: str) -> None:
    dns = FakeDns()
    with pytest.raises(UrlNotAllowed):
        guard(dns).check_url(url)
    assert dns.asked == []


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://agent.example/", "http"),
        ("agent.example/a2a", "http"),
        ("https://user:secret@agent.example/", "credentials"),
        ("https://nowhere.example/", "does not resolve"),
    ],
)
def test_registration_refuses_malformed_or_unresolvable_urls(url: str, fragment: str) -> None:
    g = guard(FakeDns({"agent.example": ["93.184.216.34"]}))
    with pytest.raises(UrlNotAllowed, match=fragment):
        g.check_url(url)


def test_registration_accepts_a_public_host() -> None:
    g = guard(FakeDns({"agent.example": ["93.184.216.34"]}))
    assert g.check_url("https://agent.example/a2a") == ["93.184.216.34"]


# -- at connect time ----------------------------------------------------------------------------


@asynccontextmanager
async def http_server() -> AsyncIterator[tuple[int, list[bytes]]]:
    """A minimal HTTP server on 127.0.0.1 that records the request heads it receives."""
    heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, heads
    finally:
        server.close()
        await server.wait_closed()


async def test_connect_time_check_defeats_dns_rebinding() -> None:
    """N1: at connect time. The host resolved to a public address when it was registered and
    resolves to loopback when the call connects: the connection is refused, nothing sent."""
    dns = FakeDns({"rebind.example": ["93.184.216.34"]})
    g = guard(dns)
    async with http_server() as (port, heads):
        g.check_url(f"http://rebind.example:{port}/")  # registration passes
        dns.table["rebind.example"] = ["127.0.0.1"]  # the attacker's DNS answer changes
        async with httpx.AsyncClient(transport=g.transport()) as client:
            with pytest.raises(httpx.ConnectError) as caught:
                await client.get(f"http://rebind.example:{port}/")
        refusal = refusal_in(caught.value)
        assert isinstance(refusal, AddressRefused)
        assert (refusal.address, refusal.reason) == ("127.0.0.1", "loopback")
        assert heads == []


async def test_connect_time_check_refuses_address_literals_too() -> None:
    async with http_server() as (port, heads):
        async with httpx.AsyncClient(transport=UrlGuard().transport()) as client:
            with pytest.raises(httpx.ConnectError, match=r"127\.0\.0\.1"):
                await client.get(f"http://127.0.0.1:{port}/")
        assert heads == []


async def test_an_allowed_host_is_reached_at_the_checked_address_with_its_own_host_name() -> None:
    dns = FakeDns({"agents.internal": ["127.0.0.1"]})
    g = UrlGuard.allowing_loopback(guard(dns))
    async with http_server() as (port, heads):
        async with httpx.AsyncClient(transport=g.transport()) as client:
            response = await client.get(f"http://agents.internal:{port}/card")
        assert response.text == "ok"
        assert f"host: agents.internal:{port}".encode() in heads[0].lower()
    assert dns.asked == ["agents.internal"]
