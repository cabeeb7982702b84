"""Security round 2, item 4: the wrong-key throttle counts the TCP peer's address, unless
the peer is a configured proxy (WEBHOOKD_TRUSTED_PROXIES). uvicorn's default trusted
X-Forwarded-For from loopback, so any local client could pick the address it was counted
against."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.server import LiveServer, running_server

PER_MINUTE = 5


@pytest.fixture(scope="module", params=["no proxy", "trusted loopback proxy"])
def server(tmp_path_factory: pytest.TempPathFactory, request) -> Iterator[LiveServer]:
    trusted = "" if request.param == "no proxy" else "127.0.0.1"
    with running_server(
        tmp_path_factory, auth_failures_per_minute=PER_MINUTE, trusted_proxies=trusted
    ) as srv:
        yield srv


def _wrong_key(server: LiveServer, forwarded_for: str) -> int:
    with server.client(**{"X-API-Key": "whk_wrong", "X-Forwarded-For": forwarded_for}) as c:
        return c.get("/api/v1/events").status_code


def test_forwarded_addresses_are_believed_only_from_trusted_proxies(server) -> None:
    statuses = [_wrong_key(server, f"203.0.113.{n}") for n in range(40)]
    if server.settings.trusted_proxy_list:
        # Behind a trusted proxy each client address has its own budget.
        assert statuses == [401] * 40
        same = [_wrong_key(server, "198.51.100.7") for _ in range(PER_MINUTE + 1)]
        assert same == [401] * PER_MINUTE + [429]
    else:
        # Without one, every request counts against the peer (127.0.0.1), whatever it claims.
        assert statuses[:PER_MINUTE] == [401] * PER_MINUTE
        assert set(statuses[PER_MINUTE:]) == {429}
        # A throttled client does not get through by claiming another address.
        assert _wrong_key(server, "192.0.2.99") == 429
