"""Tests for webhookd.delivery.ssrf (loopback-only networking)."""

from __future__ import annotations

import asyncio
import pickle
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from webhookd.delivery.ssrf import (
    BLOCKED_NETWORKS,
    GuardedResolver,
    Target,
    TargetRefused,
    blocked_reason,
    check_literal,
    parse_target,
    refused_reason,
    resolve_checked,
)

T = TypeVar("T")
TIMEOUT = 10.0


def run(factory: Callable[[], Awaitable[T]]) -> T:
    """Run one coroutine with a hard timeout."""

    async def bounded() -> T:
        return await asyncio.wait_for(factory(), TIMEOUT)

    return asyncio.run(bounded())


# --------------------------------------------------------------------- blocked_reason


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local (cloud metadata)"),
        ("fc00::1", "private (unique local)"),
        ("fd12::1", "private (unique local)"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("::ffff:127.0.0.1", "loopback (IPv4 127.0.0.1 embedded via IPv4-mapped IPv6)"),
        ("::ffff:169.254.169.254", "link-local (cloud metadata) (IPv4 169.254.169.254"),
        ("::127.0.0.1", "loopback (IPv4 127.0.0.1 embedded via IPv4-compatible IPv6)"),
        ("::8.8.8.8", "reserved (IPv4-compatible, deprecated)"),
        ("64:ff9b::7f00:1", "loopback (IPv4 127.0.0.1 embedded via NAT64 IPv6)"),
        ("64:ff9b::a00:1", "private (IPv4 10.0.0.1 embedded via NAT64 IPv6)"),
        ("64:ff9b:1::808:808", "reserved (local-use NAT64)"),
        ("2002:7f00:1::1", "loopback (IPv4 127.0.0.1 embedded via 6to4 IPv6)"),
        ("2002:a9fe:a9fe::", "link-local (cloud metadata) (IPv4 169.254.169.254"),
        ("2002:c058:6301::", "reserved (6to4 relay anycast)"),
        ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", "reserved (Teredo tunnel)"),  # client 8.8.8.8
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback (IPv4 127.0.0.1 embedded via Teredo"),
        ("fec0::7f00:1", "loopback (IPv4 127.0.0.1 embedded via site-local IPv6)"),
        ("fec0::1:0:808:808", "site-local"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("100.64.0.1", "shared (carrier-grade NAT)"),
        ("255.255.255.255", "broadcast"),
        ("240.0.0.1", "reserved"),
        ("192.0.0.8", "reserved"),
        ("192.0.2.1", "reserved (documentation)"),
        ("198.18.0.1", "reserved (benchmarking)"),
        ("198.51.100.7", "reserved (documentation)"),
        ("203.0.113.9", "reserved (documentation)"),
        ("2001:db8::1", "reserved (documentation)"),
        ("2001:10::1", "reserved (IETF protocol assignments)"),
        ("100::1", "reserved (discard-only)"),
        ("::ffff:0:808:808", "reserved (IPv4-translated)"),
        ("4000::1", "reserved (outside global unicast 2000::/3)"),
    ],
)
def test_blocked_addresses(address: str, reason: str) -> None:
    result = blocked_reason(ip_address(address))
    assert result is not None and result.startswith(reason), result


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "8.8.8.8",
        "1.1.1.1",
        "172.32.0.1",  # just outside 172.16/12
        "100.128.0.1",  # just outside 100.64/10
        "2606:4700:4700::1111",
        "2a00:1450:4001:82b::200e",
        "::ffff:8.8.8.8",  # IPv4-mapped public: the socket connects to 8.8.8.8
        "64:ff9b::808:808",  # well-known NAT64 of a public address
        # 6to4 of a public IPv4 address: traffic leaves through a public relay to that
        # public address, so it is allowed (6to4 of any blocked IPv4 is refused above).
        "2002:0808:0808::",
    ],
)
def test_allowed_addresses(address: str) -> None:
    assert blocked_reason(ip_address(address)) is None


@pytest.mark.parametrize(
    ("address", "allow", "allowed"),
    [
        ("10.1.2.3", ["10.0.0.0/8"], True),
        ("10.1.2.3", ["10.1.2.3/32"], True),
        ("10.1.2.4", ["10.1.2.3/32"], False),
        ("::ffff:10.1.2.3", ["10.0.0.0/8"], True),  # mapped form connects to 10.1.2.3
        ("2002:a01:203::", ["10.0.0.0/8"], False),  # 6to4 does not reach 10.1.2.3 itself
        ("127.0.0.1", ["10.0.0.0/8"], False),
        ("fd00::5", ["fd00::/8"], True),
        ("fd00::5", ["10.0.0.0/8"], False),
        ("127.0.0.1", ["127.0.0.0/8", "::1/128"], True),
    ],
)
def test_allow_networks(address: str, allow: list[str], allowed: bool) -> None:
    networks = [ip_network(n) for n in allow]
    assert (blocked_reason(ip_address(address), networks) is None) is allowed


@pytest.mark.parametrize(
    "network",
    [
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
        "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
        "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
        "255.255.255.255/32", "::/128", "::1/128", "fc00::/7", "fe80::/10", "fec0::/10",
        "ff00::/8", "2001:db8::/32", "100::/64", "2001::/23",
    ],
)  # fmt: skip
def test_blocked_networks_listed(network: str) -> None:
    assert ip_network(network) in BLOCKED_NETWORKS


# ------------------------------------------------------------------------ parse_target


@pytest.mark.parametrize(
    ("url", "host", "port", "literal"),
    [
        ("http://2130706433/", "2130706433", 80, "127.0.0.1"),
        ("http://0177.0.0.1/", "0177.0.0.1", 80, "127.0.0.1"),
        ("http://0x7f.0.0.1/", "0x7f.0.0.1", 80, "127.0.0.1"),
        ("http://0x7f000001/", "0x7f000001", 80, "127.0.0.1"),
        ("http://0X7F000001/", "0x7f000001", 80, "127.0.0.1"),
        ("http://127.1/", "127.1", 80, "127.0.0.1"),
        ("http://127.0.0.1./", "127.0.0.1.", 80, "127.0.0.1"),
        ("http://0/", "0", 80, "0.0.0.0"),
        ("http://017700000001/", "017700000001", 80, "127.0.0.1"),
        ("http://[::ffff:127.0.0.1]/", "::ffff:7f00:1", 80, "::ffff:127.0.0.1"),
        ("http://[::1]:8080/x", "::1", 8080, "::1"),
        (
            "https://[2606:4700:4700::1111]/hook",
            "2606:4700:4700::1111",
            443,
            "2606:4700:4700::1111",
        ),
        ("https://hooks.example.com/in?x=1", "hooks.example.com", 443, None),
        ("HTTPS://Hooks.Example.COM:8443/", "hooks.example.com", 8443, None),
        ("http://user:pw@example.com/", "example.com", 80, None),
        ("http://cafe.be/", "cafe.be", 80, None),  # hex-looking letters, but a name
        ("http://deadbeef/", "deadbeef", 80, None),
        ("http://bücher.example/", "xn--bcher-kva.example", 80, None),
        ("http://my_host.internal-zone/", "my_host.internal-zone", 80, None),
    ],
)
def test_parse_target(url: str, host: str, port: int, literal: str | None) -> None:
    target = parse_target(url)
    assert (target.host, target.port) == (host, port)
    assert target.literal_ip == (None if literal is None else ip_address(literal))
    assert target.scheme in {"http", "https"}


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://x", "scheme 'ftp'"),
        ("javascript:alert(1)", "scheme 'javascript'"),
        ("http:///nohost", "no host"),
        ("file:///etc/passwd", "scheme 'file'"),
        ("gopher://127.0.0.1:6379/_INFO", "scheme 'gopher'"),
        ("ws://example.com/", "scheme 'ws'"),
        ("//example.com/", "scheme ''"),
        ("example.com/hook", "scheme ''"),
        ("http:example.com", "no host"),
        ("http://[::1/", "malformed URL"),
        ("http://example.com:99999/", "malformed URL"),
        ("http://example.com:0/", "invalid port"),
        ("http://a\\b@evil/", "malformed URL"),
        ("http://[fe80::1%25eth0]/", "zone id"),
        ("http://1.2.3.4.5/", "malformed IPv4"),
        ("http://256.0.0.1/", "malformed IPv4"),
        ("http://exa%6dple.com/", "not a valid host name"),
        ("http://a b/", "not a valid host name"),
        ("http://" + "a" * 64 + ".com/", "not a valid host name"),
        ("https://example.com/" + "a" * 2030, "longer than 2048"),
    ],
)
def test_parse_target_refuses(url: str, reason: str) -> None:
    with pytest.raises(TargetRefused) as info:
        parse_target(url)
    assert reason in info.value.reason


def test_url_length_limit_is_inclusive() -> None:
    url = "https://example.com/"
    assert parse_target(url + "a" * (2048 - len(url))).host == "example.com"


# ----------------------------------------------------------------------- check_literal

PRIVATE_SPELLINGS = [
    "http://127.0.0.1/",
    "http://2130706433/",
    "http://0177.0.0.1/",
    "http://0x7f.0.0.1/",
    "http://0x7f000001/",
    "http://127.1/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::1]:8080/x",
    "http://[::127.0.0.1]/",
    "http://[64:ff9b::7f00:1]/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://0/",
]
ALLOW_LOCAL = [ip_network(n) for n in ("127.0.0.0/8", "169.254.0.0/16", "0.0.0.0/8", "::1/128")]


@pytest.mark.parametrize("url", PRIVATE_SPELLINGS)
def test_check_literal_refuses_private_spellings(url: str) -> None:
    target = parse_target(url)
    with pytest.raises(TargetRefused) as info:
        check_literal(target, allow_private=False)
    assert "WEBHOOKD_ALLOW_PRIVATE_TARGETS=true" in info.value.reason
    assert target.host in info.value.reason
    check_literal(target, allow_private=True)


@pytest.mark.parametrize("url", [u for u in PRIVATE_SPELLINGS if "[::127" not in u])
@pytest.mark.parametrize("allowed", [False, True])
def test_check_literal_allow_networks(url: str, allowed: bool) -> None:
    """IPv4 spellings and IPv4-mapped literals are matched against IPv4 allow networks."""
    allow = ALLOW_LOCAL if allowed else [ip_network("10.0.0.0/8"), ip_network("fd00::/8")]
    if "64:ff9b" in url:  # NAT64 needs its own IPv6 allow entry
        allow = [ip_network("64:ff9b::/96")] if allowed else ALLOW_LOCAL
    if allowed:
        check_literal(parse_target(url), allow_private=False, allow_networks=allow)
    else:
        with pytest.raises(TargetRefused):
            check_literal(parse_target(url), allow_private=False, allow_networks=allow)


def test_ipv4_compatible_literal_is_not_matched_by_ipv4_allow_network() -> None:
    """``::127.0.0.1`` does not connect to 127.0.0.1, so allowing 127/8 does not cover it."""
    with pytest.raises(TargetRefused):
        check_literal(
            parse_target("http://[::127.0.0.1]/"), allow_private=False, allow_networks=ALLOW_LOCAL
        )


HINT = (
    "webhooks may not target private networks "
    "(set WEBHOOKD_ALLOW_PRIVATE_TARGETS=true for local development)"
)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://2130706433/", "host '2130706433' is 127.0.0.1, a loopback address"),
        ("http://[::1]/", "host '::1' is a loopback address"),
        (
            "http://169.254.169.254/",
            "host '169.254.169.254' is a link-local (cloud metadata) address",
        ),
        ("http://0/", "host '0' is 0.0.0.0, an unspecified ('this network') address"),
        (
            "http://[::ffff:127.0.0.1]/",
            "host '::ffff:7f00:1' is a loopback address"
            " (IPv4 127.0.0.1 embedded via IPv4-mapped IPv6)",
        ),
    ],
)
def test_check_literal_message(url: str, message: str) -> None:
    with pytest.raises(TargetRefused) as info:
        check_literal(parse_target(url), allow_private=False)
    assert info.value.reason == f"{message}; {HINT}"


@pytest.mark.parametrize(
    "url", ["http://8.8.8.8/", "https://[2606:4700:4700::1111]/", "https://localhost/"]
)
def test_check_literal_passes_public_and_names(url: str) -> None:
    check_literal(parse_target(url), allow_private=False)


def test_target_is_frozen() -> None:
    target = Target("http", "example.com", 80, None)
    with pytest.raises(AttributeError):
        target.host = "other"  # type: ignore[misc]


# --------------------------------------------------------------------- resolve_checked


def test_resolve_checked_refuses_localhost() -> None:
    with pytest.raises(TargetRefused) as info:
        run(lambda: resolve_checked("localhost", 80, allow_private=False))
    assert "host 'localhost' resolves to" in info.value.reason
    assert "loopback" in info.value.reason


def test_resolve_checked_allows_localhost_when_permitted() -> None:
    addresses = run(lambda: resolve_checked("localhost", 80, allow_private=True))
    assert addresses and all(ip_address(a).is_loopback for a in addresses)
    allow = [ip_network("127.0.0.0/8"), ip_network("::1/128")]
    assert (
        run(lambda: resolve_checked("localhost", 80, allow_private=False, allow_networks=allow))
        == addresses
    )


def _fake_getaddrinfo(addresses: list[str]) -> Callable[..., list[Any]]:
    def fake(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, port, 0, 0))
            if ":" in a
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in addresses
        ]

    return fake


def test_resolve_checked_checks_every_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", _fake_getaddrinfo(["93.184.216.34", "10.0.0.7"]))
    with pytest.raises(TargetRefused) as info:
        run(lambda: resolve_checked("mixed.test", 443, allow_private=False))
    assert "host 'mixed.test' resolves to 10.0.0.7, a private address" in info.value.reason


def test_resolve_checked_returns_public(monkeypatch: pytest.MonkeyPatch) -> None:
    addresses = ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "93.184.216.34"]
    monkeypatch.setattr(socket, "getaddrinfo", _fake_getaddrinfo(addresses))
    assert run(lambda: resolve_checked("public.test", 443, allow_private=False)) == addresses[:2]


def test_resolve_checked_unresolvable(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: Any, **kwargs: Any) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(TargetRefused) as info:
        run(lambda: resolve_checked("nope.invalid", 80, allow_private=True))
    assert info.value.reason.startswith("cannot resolve host 'nope.invalid'")


# --------------------------------------------------------------------- GuardedResolver


@asynccontextmanager
async def local_server() -> AsyncIterator[tuple[int, list[bytes]]]:
    """A real aiohttp server on 127.0.0.1 that records the bodies it receives."""
    hits: list[bytes] = []

    async def handle(request: web.Request) -> web.Response:
        hits.append(await request.read())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1], hits
    finally:
        await runner.cleanup()


async def post(resolver: AbstractResolver, url: str) -> int:
    connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=5), trust_env=False
    ) as session:
        async with session.post(url, data=b"payload", allow_redirects=False) as response:
            return response.status


def test_guarded_resolver_refuses_localhost() -> None:
    async def scenario() -> tuple[BaseException, list[bytes]]:
        async with local_server() as (port, hits):
            with pytest.raises(aiohttp.ClientConnectorError) as info:
                await post(GuardedResolver(allow_private=False), f"http://localhost:{port}/")
            return info.value, hits

    exc, hits = run(scenario)
    assert hits == []
    assert isinstance(exc, aiohttp.ClientConnectorDNSError)
    assert isinstance(exc.os_error, TargetRefused)
    assert isinstance(exc.__cause__, TargetRefused)
    reason = refused_reason(exc)
    assert reason is not None and "host 'localhost' resolves to 127.0.0.1, a loopback" in reason


def test_guarded_resolver_allows_localhost_when_permitted() -> None:
    async def scenario() -> tuple[int, list[bytes]]:
        async with local_server() as (port, hits):
            return await post(
                GuardedResolver(allow_private=True), f"http://localhost:{port}/"
            ), hits

    assert run(scenario) == (200, [b"payload"])


def test_guarded_resolver_allow_networks() -> None:
    async def scenario() -> int:
        async with local_server() as (port, _):
            resolver = GuardedResolver(
                allow_networks=[ip_network("127.0.0.0/8"), ip_network("::1/128")]
            )
            return await post(resolver, f"http://localhost:{port}/")

    assert run(scenario) == 200


def test_hex_host_goes_through_resolver_and_is_refused() -> None:
    # aiohttp does not treat "0x7f000001" as an IP literal; getaddrinfo maps it to 127.0.0.1.
    async def scenario() -> str | None:
        async with local_server() as (port, hits):
            try:
                await post(GuardedResolver(), f"http://0x7f000001:{port}/")
            except aiohttp.ClientError as exc:
                assert hits == []
                return refused_reason(exc)
            return None

    reason = run(scenario)
    assert reason is not None and "loopback" in reason


def test_ip_literal_bypasses_resolver_so_check_literal_is_required() -> None:
    async def scenario() -> tuple[str, int]:
        async with local_server() as (port, _):
            url = f"http://127.0.0.1:{port}/"
            return url, await post(GuardedResolver(allow_private=False), url)

    url, status = run(scenario)
    assert status == 200  # aiohttp never asked the resolver
    with pytest.raises(TargetRefused):
        check_literal(parse_target(url), allow_private=False)


class RebindingResolver(AbstractResolver):
    """Answers with a public address the first time and 127.0.0.1 afterwards."""

    def __init__(self) -> None:
        self.calls = 0

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.calls += 1
        address = "93.184.216.34" if self.calls == 1 else "127.0.0.1"
        return [
            ResolveResult(
                hostname=host, host=address, port=port, family=socket.AF_INET, proto=0, flags=0
            )
        ]

    async def close(self) -> None:
        return None


def test_dns_rebinding_is_refused_at_connect_time() -> None:
    async def scenario() -> tuple[list[ResolveResult], BaseException, list[bytes]]:
        async with local_server() as (port, hits):
            guarded = GuardedResolver(inner=RebindingResolver())
            # Validation-time check (nothing is contacted): the name looks public.
            first = await guarded.resolve("rebind.test", port)
            with pytest.raises(aiohttp.ClientConnectorError) as info:
                await post(guarded, f"http://rebind.test:{port}/")
            return first, info.value, hits

    first, exc, hits = run(scenario)
    assert [r["host"] for r in first] == ["93.184.216.34"]
    assert hits == []
    reason = refused_reason(exc)
    assert reason is not None and "host 'rebind.test' resolves to 127.0.0.1" in reason


def test_dns_rebinding_reaches_loopback_without_guard() -> None:
    """Control for the test above: an unguarded resolver really connects to 127.0.0.1."""

    async def scenario() -> tuple[int, list[bytes]]:
        async with local_server() as (port, hits):
            bare = RebindingResolver()
            await bare.resolve("rebind.test", port)  # the "public" answer, never dialled
            return await post(bare, f"http://rebind.test:{port}/"), hits

    assert run(scenario) == (200, [b"payload"])


def test_guarded_resolver_close_closes_inner() -> None:
    class Inner(RebindingResolver):
        closed = False

        async def close(self) -> None:
            self.closed = True

    inner = Inner()
    run(lambda: GuardedResolver(inner=inner).close())
    assert inner.closed


# ---------------------------------------------------------------------- refused_reason


def test_refused_reason_digs_through_chains() -> None:
    refusal = TargetRefused("nope")
    try:
        try:
            raise refusal
        except TargetRefused as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        wrapped = outer
    assert refused_reason(refusal) == "nope"
    assert refused_reason(wrapped) == "nope"
    assert refused_reason(ExceptionGroup("g", [ValueError(), wrapped])) == "nope"
    assert refused_reason(ValueError("x")) is None
    assert refused_reason(aiohttp.ClientConnectionError("x")) is None


def test_target_refused_is_oserror_and_picklable() -> None:
    refusal = TargetRefused("why")
    assert isinstance(refusal, OSError)
    assert str(refusal) == "why" and refusal.strerror == "why" and refusal.errno is None
    clone = pickle.loads(pickle.dumps(refusal))
    assert isinstance(clone, TargetRefused) and clone.reason == "why"


def test_literal_types() -> None:
    assert isinstance(parse_target("http://10.0.0.1/").literal_ip, IPv4Address)
    assert isinstance(parse_target("http://[fd00::1]/").literal_ip, IPv6Address)
