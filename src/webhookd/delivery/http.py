"""The one pooled HTTP client used for deliveries (aiohttp), with the SSRF guard in its resolver."""

from __future__ import annotations

import aiohttp

from webhookd import __version__
from webhookd.config import Settings
from webhookd.delivery import ssrf

USER_AGENT = f"webhookd/{__version__}"


def create_client(settings: Settings) -> aiohttp.ClientSession:
    """A session shared by every delivery of the process.

    - the resolver refuses names that resolve to private addresses, and aiohttp connects to
      exactly the addresses it returned (no DNS rebinding between check and connect);
    - no cookies are kept (tenants must never see each other's cookies);
    - proxies from the environment are ignored (a proxy would hide the real target);
    - an idle connection is reused only within ``delivery_keepalive`` seconds, before
      receivers' own idle timeouts close it under a request in flight.
    """
    resolver = (
        None
        if settings.allow_private_targets
        else ssrf.GuardedResolver(allow_private=False, allow_networks=settings.allowed_network_list)
    )
    connector = aiohttp.TCPConnector(
        limit=settings.delivery_concurrency,
        limit_per_host=0,
        resolver=resolver,
        ttl_dns_cache=10,
        keepalive_timeout=settings.delivery_keepalive,
    )
    timeout = aiohttp.ClientTimeout(
        total=settings.request_timeout, sock_connect=settings.connect_timeout
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        headers={"User-Agent": USER_AGENT},
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
        auto_decompress=False,
        skip_auto_headers=("Accept-Encoding",),
    )
