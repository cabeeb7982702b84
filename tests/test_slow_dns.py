"""Security round 2, item 1: an endpoint's host name is resolved before any write
transaction, within WEBHOOKD_DNS_TIMEOUT. With the resolution inside the transaction, one
tenant's slow DNS held SQLite's process-wide write lock (and a pooled PostgreSQL
connection): another tenant's publish waited for it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import TenantCtx, create_tenant
from tests.fixtures.server import ADMIN_KEY, LiveServer, running_server
from webhookd.delivery import ssrf

SLOW = 2.0  # seconds *.slow.test takes to resolve (under the bound)
HANGS = 4.0  # *.hang.test (over it)
BOUND = 3.0  # WEBHOOKD_DNS_TIMEOUT


@pytest.fixture(scope="module", autouse=True)
def resolver_stub() -> Iterator[None]:
    """Names under .test resolve to loopback, *.slow.test after SLOW seconds, *.hang.test
    after HANGS; anything else as the system resolves it."""
    real = ssrf._system_getaddrinfo

    def stub(host: str, port: int) -> list[Any]:
        if host.endswith(".test"):
            delay = SLOW if host.endswith(".slow.test") else 0.0
            delay = HANGS if host.endswith(".hang.test") else delay
            time.sleep(delay)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real(host, port)

    ssrf._system_getaddrinfo = stub
    yield
    ssrf._system_getaddrinfo = real


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[LiveServer]:
    # The SSRF guard on (names are resolved), loopback allowed for the stub's answers.
    with running_server(
        tmp_path_factory,
        backend=backend,
        allow_private_targets=False,
        allowed_networks="127.0.0.0/8",
        dns_timeout=BOUND,
    ) as srv:
        yield srv


@pytest.fixture(scope="module")
def admin(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client(**{"X-Admin-Key": ADMIN_KEY}) as client:
        yield client


def _create_in_background(tenant: TenantCtx, url: str) -> tuple[threading.Thread, list[int]]:
    answers: list[int] = []

    def create() -> None:
        answers.append(
            tenant.client.post(
                f"/api/v1/tenants/{tenant.id}/endpoints", json={"url": url}
            ).status_code
        )

    thread = threading.Thread(target=create)
    thread.start()
    return thread, answers


def test_a_slow_dns_answer_does_not_hold_up_another_tenants_publish(server, admin) -> None:
    slow, other = create_tenant(server, admin), create_tenant(server, admin)
    assert other.publish(event_id="warm-up").status_code == 202  # its key is now cached
    started = [_create_in_background(slow, f"http://n{i}.slow.test:9/hook") for i in range(3)]
    time.sleep(0.3)  # the three resolutions are under way
    begin = time.monotonic()
    assert other.publish(event_id="while-resolving").status_code == 202
    waited = time.monotonic() - begin
    for thread, answers in started:
        thread.join(timeout=SLOW + 5)
        assert answers == [201]
    # Before the fix this publish waited for the resolutions, one after another (~6 s).
    assert waited < SLOW / 2, f"publish waited {waited:.2f} s behind a DNS lookup"


def test_a_host_that_does_not_resolve_within_the_bound_is_a_422(server, admin) -> None:
    tenant = create_tenant(server, admin)
    begin = time.monotonic()
    response = tenant.client.post(
        f"/api/v1/tenants/{tenant.id}/endpoints", json={"url": "http://a.hang.test/hook"}
    )
    elapsed = time.monotonic() - begin
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["fields"][0]["field"] == "url"
    assert f"no answer within {BOUND:g} s" in error["message"]
    assert elapsed < BOUND + 2


def test_patching_the_url_resolves_before_the_transaction_too(server, admin) -> None:
    slow, other = create_tenant(server, admin), create_tenant(server, admin)
    endpoint = slow.add_endpoint("http://fast.test:9/hook")
    assert other.publish(event_id="warm-up-2").status_code == 202
    answers: list[int] = []

    def patch() -> None:
        answers.append(
            slow.client.patch(
                f"/api/v1/tenants/{slow.id}/endpoints/{endpoint['id']}",
                json={"url": "http://p.slow.test:9/hook"},
            ).status_code
        )

    thread = threading.Thread(target=patch)
    thread.start()
    time.sleep(0.3)
    begin = time.monotonic()
    assert other.publish(event_id="while-patching").status_code == 202
    waited = time.monotonic() - begin
    thread.join(timeout=SLOW + 5)
    assert answers == [200]
    assert waited < SLOW / 2, f"publish waited {waited:.2f} s behind a DNS lookup"
