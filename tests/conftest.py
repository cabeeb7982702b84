"""Shared fixtures: a real webhookd server, a real receiver, tenants to work with."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.fixtures.browser import browser, page  # noqa: F401 - fixtures of the page tests
from tests.fixtures.db import BACKENDS
from tests.fixtures.receiver import Receiver
from tests.fixtures.server import ADMIN_KEY, LiveServer, running_server

_names = itertools.count(1)


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Every test that runs a server runs once per database backend."""
    return str(request.param)


@pytest.fixture(scope="module")
def receiver(backend: str) -> Iterator[Receiver]:
    """One receiver per module and backend, so the two runs of a test never mix."""
    rec = Receiver().start()
    yield rec
    rec.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[LiveServer]:
    with running_server(tmp_path_factory, "db", backend=backend) as srv:
        yield srv


@pytest.fixture(scope="module")
def admin(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client(**{"X-Admin-Key": ADMIN_KEY}) as client:
        yield client


@dataclass
class TenantCtx:
    id: int
    api_key: str
    secret_key: str
    client: httpx.Client  # authenticated with the tenant's API key

    def add_endpoint(self, url: str, **fields: object) -> dict:
        response = self.client.post(
            f"/api/v1/tenants/{self.id}/endpoints", json={"url": url, **fields}
        )
        assert response.status_code == 201, response.text
        return response.json()

    def publish(self, event_type: str = "user.created", event_id: str | None = None, **payload):
        event_id = event_id or f"evt_{next(_names)}"
        return self.client.post(
            "/api/v1/events",
            json={"event_id": event_id, "event_type": event_type, "payload": payload or {"n": 1}},
        )


def create_tenant(server: LiveServer, admin: httpx.Client, rate_limit: int = 10_000) -> TenantCtx:
    response = admin.post(
        "/api/v1/tenants",
        json={
            "name": f"tenant {next(_names)}",
            "email": "ops@example.com",
            "rate_limit": rate_limit,
        },
    )
    assert response.status_code == 201, response.text
    data = response.json()
    client = server.client(**{"X-API-Key": data["api_key"]})
    return TenantCtx(data["id"], data["api_key"], data["secret_key"], client)


@pytest.fixture
def tenant(server: LiveServer, admin: httpx.Client) -> Iterator[TenantCtx]:
    ctx = create_tenant(server, admin)
    yield ctx
    ctx.client.close()


@pytest.fixture
def other_tenant(server: LiveServer, admin: httpx.Client) -> Iterator[TenantCtx]:
    ctx = create_tenant(server, admin)
    yield ctx
    ctx.client.close()
