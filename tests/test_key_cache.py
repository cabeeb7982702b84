"""The cache of authenticated API keys, through the API: what takes effect at once in this
process, what waits for the TTL in another one, and a deleted tenant's key."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.api_errors import assert_error
from tests.conftest import create_tenant
from tests.fixtures.db import TestDatabase, row_id, run_sql
from tests.fixtures.server import ADMIN_KEY, LiveServer, make_settings
from webhookd.models import Tenant

TTL = 1.0
TENANTS = "/api/v1/tenants"


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory, backend: str) -> Iterator[tuple[LiveServer, LiveServer]]:
    """Two API processes (each with its own cache) on one database."""
    database = TestDatabase(backend, tmp_path_factory.mktemp("keycache"))
    settings = make_settings(database.url, api_key_cache_seconds=TTL)
    first = LiveServer(settings).start()
    second = LiveServer(settings).start()
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()
        database.drop()


def _publish(client, event_id: str):
    return client.post(
        "/api/v1/events", json={"event_id": event_id, "event_type": "a.b", "payload": {}}
    )


def test_rotation_refuses_the_old_key_at_once_here_and_within_ttl_elsewhere(two_servers) -> None:
    here, there = two_servers
    with here.client(**{"X-Admin-Key": ADMIN_KEY}) as admin:
        tenant = create_tenant(here, admin)
    with there.client(**{"X-API-Key": tenant.api_key}) as elsewhere:
        assert elsewhere.get("/api/v1/events").status_code == 200  # cached there now
        rotated = tenant.client.post(f"{TENANTS}/{tenant.id}/rotate-api-key")
        assert rotated.status_code == 200, rotated.text
        assert_error(tenant.client.get("/api/v1/events"), 401, "unauthorized")
        assert_error(_publish(tenant.client, "old-key-here"), 401, "unauthorized")
        # The other process learns of the rotation only when its entry expires.
        deadline = time.monotonic() + TTL + 2
        while elsewhere.get("/api/v1/events").status_code == 200:
            assert time.monotonic() < deadline, "the old key outlived the cache TTL"
            time.sleep(0.05)
        assert_error(elsewhere.get("/api/v1/events"), 401, "unauthorized")
    with there.client(**{"X-API-Key": rotated.json()["api_key"]}) as new:
        assert _publish(new, "new-key-there").status_code == 202
    tenant.client.close()


def test_a_rate_limit_change_applies_at_once(two_servers) -> None:
    here, _ = two_servers
    with here.client(**{"X-Admin-Key": ADMIN_KEY}) as admin:
        tenant = create_tenant(here, admin, rate_limit=1000)
        first = _publish(tenant.client, "limit-1")
        assert first.headers["X-RateLimit-Limit"] == "1000"
        assert admin.patch(f"{TENANTS}/{tenant.id}", json={"rate_limit": 7}).status_code == 200
    second = _publish(tenant.client, "limit-2")
    assert second.status_code == 202 and second.headers["X-RateLimit-Limit"] == "7"
    tenant.client.close()


def test_a_deleted_tenants_key_is_refused(two_servers) -> None:
    here, _ = two_servers
    with here.client(**{"X-Admin-Key": ADMIN_KEY}) as admin:
        tenant = create_tenant(here, admin)
        keep = create_tenant(here, admin)
    assert _publish(tenant.client, "before-delete").status_code == 202  # key cached
    row = row_id(here.settings, Tenant, tenant.id)
    run_sql(here.settings, "DELETE FROM tenants WHERE id = :id", id=row)
    # Still cached: the publish itself finds the tenant gone (401, never a 500), and the
    # other tenants publishing at the same time are not affected.
    assert_error(_publish(tenant.client, "after-delete"), 401, "unauthorized")
    assert_error(tenant.client.get("/api/v1/events"), 401, "unauthorized")
    assert _publish(keep.client, "unaffected").status_code == 202
    tenant.client.close()
    keep.client.close()
