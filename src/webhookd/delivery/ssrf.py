"""SSRF guard for tenant-chosen webhook URLs.

Tenants pick the URLs we POST to, so without a guard they could make webhookd talk to
loopback services, the private network or a cloud metadata endpoint. Defence has
three layers, all of which callers must use:

1. :func:`parse_target` + :func:`check_literal` before *every* request (including each
   retry). aiohttp never consults the resolver for IP-literal hosts, so a literal such
   as ``http://169.254.169.254/`` is only caught here. ``parse_target`` parses with
   yarl, exactly as aiohttp will, and recognises every IPv4 spelling resolvers accept
   (``2130706433``, ``0177.0.0.1``, ``0x7f.1``, ``127.1``...).
2. :class:`GuardedResolver` as the ``TCPConnector`` resolver. It checks *every*
   address a name resolves to and aiohttp then connects only to those checked
   addresses, so DNS rebinding between check and connect is impossible.
3. Send with ``allow_redirects=False`` and no proxy (``trust_env=False``): a redirect
   to an IP literal would skip the resolver, and with a proxy the resolver only ever
   sees the proxy's host.

A refusal raised inside aiohttp surfaces from ``session.post`` as
``aiohttp.ClientConnectorDNSError`` (``TargetRefused`` is an ``OSError``, which the
connector wraps); :func:`refused_reason` digs the reason out of it.

IPv6 addresses that embed IPv4 (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo,
site-local) are judged by the embedded address as well as by their own range. 6to4
(``2002::/16``) of a *public* IPv4 address is allowed: the packet leaves through a
public relay to that public address. Teredo is always refused.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)
from typing import Any

import aiohttp.abc
import aiohttp.resolver
from yarl import URL

from webhookd.db import network_wait

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

MAX_URL_LENGTH = 2048
ALLOWED_SCHEMES = frozenset({"http", "https"})
_HINT = (
    "webhooks may not target private networks "
    "(set WEBHOOKD_ALLOW_PRIVATE_TARGETS=true for local development)"
)

# (network, label) pairs; the first match names the problem, so specific ranges
# come before the ranges that contain them.
_RULES: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ip_network(net), label)
    for net, label in (
        ("0.0.0.0/8", "unspecified ('this network')"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared (carrier-grade NAT)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local (cloud metadata)"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "reserved (IETF protocol assignments)"),
        ("192.0.2.0/24", "reserved (documentation)"),
        ("192.88.99.0/24", "reserved (6to4 relay anycast)"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "reserved (benchmarking)"),
        ("198.51.100.0/24", "reserved (documentation)"),
        ("203.0.113.0/24", "reserved (documentation)"),
        ("224.0.0.0/4", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("240.0.0.0/4", "reserved (class E)"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("::/96", "reserved (IPv4-compatible, deprecated)"),
        ("::ffff:0:0:0/96", "reserved (IPv4-translated)"),
        ("64:ff9b:1::/48", "reserved (local-use NAT64)"),
        ("100::/64", "reserved (discard-only)"),
        ("2001::/32", "reserved (Teredo tunnel)"),
        ("2001::/23", "reserved (IETF protocol assignments)"),
        ("2001:db8::/32", "reserved (documentation)"),
        ("3fff::/20", "reserved (documentation)"),
        ("5f00::/16", "reserved (SRv6 SIDs)"),
        ("fc00::/7", "private (unique local)"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local (deprecated)"),
        ("ff00::/8", "multicast"),
    )
)
BLOCKED_NETWORKS: tuple[IPNetwork, ...] = tuple(net for net, _ in _RULES)

_NAT64 = IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = IPv6Network("64:ff9b:1::/48")
_SITE_LOCAL = IPv6Network("fec0::/10")
_GLOBAL_UNICAST = IPv6Network("2000::/3")
_NUMERIC_HOST = re.compile(r"[0-9a-fx.]+")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
_HOST_NAME = re.compile(r"(?=.{1,253}\.?$)[a-z0-9_-]{1,63}(?:\.[a-z0-9_-]{1,63})*\.?")


class TargetRefused(OSError):
    """A delivery target is not allowed; ``reason`` is a human-readable explanation.

    Subclasses ``OSError`` so that aiohttp wraps it (as ``ClientConnectorDNSError``)
    instead of letting an unrelated exception type escape ``session.post``.
    """

    def __init__(self, reason: str) -> None:
        """Store ``reason`` (also used as ``strerror``, which aiohttp shows)."""
        super().__init__(None, reason)
        self.reason = reason

    def __str__(self) -> str:
        """Return the reason alone, without OSError's ``[Errno None]`` prefix."""
        return self.reason

    def __repr__(self) -> str:
        """Show the reason only."""
        return f"TargetRefused({self.reason!r})"

    def __reduce__(self) -> tuple[type[TargetRefused], tuple[str]]:
        """Pickle by reason (OSError's default would pass ``(None, reason)``)."""
        return (type(self), (self.reason,))


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed delivery URL; ``literal_ip`` is set when the host is an IP literal."""

    scheme: str
    host: str
    port: int
    literal_ip: IPAddress | None


def _embedded_v4(ip: IPv6Address) -> tuple[IPv4Address, str] | None:
    """Return the IPv4 address embedded in ``ip`` and the embedding's name, if any."""
    value = int(ip)
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, "IPv4-mapped"
    if value >> 32 == 0 and value > 1:
        return IPv4Address(value), "IPv4-compatible"
    if ip in _NAT64 or ip in _NAT64_LOCAL:
        return IPv4Address(value & 0xFFFFFFFF), "NAT64"
    if ip.sixtofour is not None:
        return ip.sixtofour, "6to4"
    if ip.teredo is not None:
        return ip.teredo[1], "Teredo"
    if ip in _SITE_LOCAL:
        return IPv4Address(value & 0xFFFFFFFF), "site-local"
    return None


def _rule_label(ip: IPAddress) -> str | None:
    """Return the label of the first deny rule containing ``ip``."""
    return next((label for net, label in _RULES if ip in net), None)


def _classify(ip: IPAddress, allow: Sequence[IPNetwork]) -> tuple[str, str] | None:
    """Return ``(label, detail)`` for a blocked address, None if it may be contacted."""
    if isinstance(ip, IPv6Address) and ip.scope_id is not None:
        ip = IPv6Address(int(ip))
    candidates: list[IPAddress] = [ip]
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        candidates.append(ip.ipv4_mapped)  # the socket really connects to this v4
    if any(c in net for c in candidates for net in allow):
        return None
    if isinstance(ip, IPv6Address):
        embedded = _embedded_v4(ip)
        if embedded is not None:
            v4, kind = embedded
            label = _rule_label(v4)
            if label is not None:
                return label, f" (IPv4 {v4} embedded via {kind} IPv6)"
        label = _rule_label(ip)
        if label is not None:
            return label, ""
        if ip.ipv4_mapped is not None or ip in _NAT64:
            return None  # embedded IPv4 already found public
        if ip not in _GLOBAL_UNICAST:
            return "reserved (outside global unicast 2000::/3)", ""
        return None
    label = _rule_label(ip)
    return (label, "") if label is not None else None


def blocked_reason(ip: IPAddress, allow: Sequence[IPNetwork] = ()) -> str | None:
    """Return why ``ip`` may not be contacted (e.g. ``"loopback"``), or None if allowed.

    Addresses inside an ``allow`` network are always permitted; for IPv4-mapped IPv6
    the mapped IPv4 address is matched against ``allow`` too.
    """
    found = _classify(ip, allow)
    return None if found is None else found[0] + found[1]


def _refusal(subject: str, ip: IPAddress, allow: Sequence[IPNetwork]) -> TargetRefused | None:
    """Build the refusal ``subject + "a <label> address..."`` for ``ip``, None if allowed."""
    found = _classify(ip, allow)
    if found is None:
        return None
    label, detail = found
    article = "an" if label[0] in "aeiou" else "a"
    return TargetRefused(f"{subject}{article} {label} address{detail}; {_HINT}")


def _parse_ipv4(host: str) -> IPv4Address | None:
    """Parse every IPv4 spelling ``inet_aton`` accepts; raise TargetRefused for bad ones.

    Returns None for hosts that are names. A host whose last label is numeric cannot
    be a DNS name, so if it fails to parse it is refused as malformed.
    """
    bare = host.rstrip(".")
    if not _NUMERIC_HOST.fullmatch(bare):
        return None
    try:
        return IPv4Address(socket.inet_aton(bare))
    except OSError:
        if _NUMERIC_LABEL.fullmatch(bare.rsplit(".", 1)[-1]):
            raise TargetRefused(f"host {host!r} is a malformed IPv4 address") from None
        return None


def parse_target(url: str) -> Target:
    """Parse a delivery URL, raising TargetRefused if it can never be delivered to.

    Refuses non-http(s) schemes, missing or malformed hosts, IPv6 zone ids, port 0 and
    URLs over 2048 characters. IP literals in any spelling end up in ``literal_ip``.
    The host is parsed by yarl, the same parser aiohttp uses for the request.
    """
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefused(f"URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parsed = URL(url)
        port = parsed.port
    except (ValueError, TypeError) as exc:
        raise TargetRefused(f"malformed URL: {exc}") from None
    if parsed.scheme not in ALLOWED_SCHEMES:
        raise TargetRefused(f"scheme {parsed.scheme!r} is not allowed; use http or https")
    host = parsed.raw_host
    if not host:
        raise TargetRefused("URL has no host")
    if port is None or not 0 < port < 65536:
        raise TargetRefused(f"invalid port in URL: {port}")
    literal: IPAddress | None
    if ":" in host:
        if "%" in host:
            raise TargetRefused(f"IPv6 zone ids are not allowed: {host!r}")
        try:
            literal = IPv6Address(host)
        except ValueError:
            raise TargetRefused(f"host {host!r} is a malformed IPv6 address") from None
    else:
        literal = _parse_ipv4(host)
        if literal is None and not _HOST_NAME.fullmatch(host):
            raise TargetRefused(f"host {host!r} is not a valid host name")
    return Target(scheme=parsed.scheme, host=host, port=port, literal_ip=literal)


def check_literal(
    target: Target, *, allow_private: bool, allow_networks: Sequence[IPNetwork] = ()
) -> None:
    """Raise TargetRefused if ``target`` is an IP literal in a blocked range.

    No-op for host names (those are checked at resolution) or when ``allow_private``.
    """
    if target.literal_ip is None or allow_private:
        return
    ip = target.literal_ip
    subject = f"host {target.host!r} is " + ("" if target.host == str(ip) else f"{ip}, ")
    refusal = _refusal(subject, ip, allow_networks)
    if refusal is not None:
        raise refusal


def _check_addresses(
    host: str, addresses: Iterable[str], allow_networks: Sequence[IPNetwork]
) -> None:
    """Raise TargetRefused naming ``host`` if any of ``addresses`` is blocked."""
    for address in addresses:
        ip = ip_address(address)
        refusal = _refusal(f"host {host!r} resolves to {ip}, ", ip, allow_networks)
        if refusal is not None:
            raise refusal


async def resolve_checked(
    host: str,
    port: int,
    *,
    allow_private: bool,
    allow_networks: Sequence[IPNetwork] = (),
    timeout: float = 5.0,  # noqa: ASYNC109 - a bound on the lookup, which runs on a thread
) -> list[str]:
    """Resolve ``host`` and return its addresses, refusing if ANY of them is blocked.

    Raises TargetRefused("cannot resolve host ...") if resolution fails or takes longer
    than ``timeout`` seconds. Useful for validating an endpoint URL when it is registered;
    delivery itself relies on :class:`GuardedResolver`, which re-checks at connection time.
    """
    network_wait(f"resolving {host}")
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.run_in_executor(_CHECK_POOL, _system_getaddrinfo, host, port)
    except TimeoutError:
        raise TargetRefused(
            f"cannot resolve host {host!r}: no answer within {timeout:g} s"
        ) from None
    except socket.gaierror as exc:
        raise TargetRefused(f"cannot resolve host {host!r}: {exc.strerror}") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise TargetRefused(f"cannot resolve host {host!r}: no addresses")
    if not allow_private:
        _check_addresses(host, addresses, allow_networks)
    return addresses


# URL checks resolve on threads of their own: lookups that hang (a slow or hostile name
# server) fill this pool and time out, never the loop's default executor that deliveries
# resolve on.
_CHECK_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="webhookd-url-check")


def _system_getaddrinfo(host: str, port: int) -> list[Any]:
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)


class GuardedResolver(aiohttp.abc.AbstractResolver):
    """aiohttp resolver that refuses names resolving to any blocked address.

    Wraps ``inner`` (default: ``aiohttp.resolver.ThreadedResolver``, i.e. the system
    ``getaddrinfo``). The records returned are exactly those the connector dials, so
    the check cannot be bypassed by DNS rebinding. Must be created inside a running
    event loop when ``inner`` is omitted. IP-literal URLs bypass resolvers in aiohttp;
    see :func:`check_literal`.
    """

    def __init__(
        self,
        *,
        allow_private: bool = False,
        allow_networks: Sequence[IPNetwork] = (),
        inner: aiohttp.abc.AbstractResolver | None = None,
    ) -> None:
        """Configure the policy and the wrapped resolver."""
        self._allow_private = allow_private
        self._allow_networks = tuple(allow_networks)
        self._inner = inner if inner is not None else aiohttp.resolver.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        """Resolve via the inner resolver; raise TargetRefused if any record is blocked."""
        records = await self._inner.resolve(host, port, family)
        if not self._allow_private:
            _check_addresses(host, (r["host"] for r in records), self._allow_networks)
        return records

    async def close(self) -> None:
        """Close the inner resolver."""
        await self._inner.close()


def refused_reason(exc: BaseException) -> str | None:
    """Return the TargetRefused reason hidden in ``exc``, or None if it is not a refusal.

    Follows ``os_error`` (aiohttp ``ClientConnectorError``), ``__cause__``,
    ``__context__`` and exception-group members.
    """
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, TargetRefused):
            return current.reason
        linked = [getattr(current, "os_error", None), current.__cause__, current.__context__]
        if isinstance(current, BaseExceptionGroup):
            linked.extend(current.exceptions)
        pending.extend(e for e in linked if isinstance(e, BaseException))
    return None
