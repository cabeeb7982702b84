"""Secrets at rest, secret reveal and rotation without downtime, brute-force throttling."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator

import pytest
from standardwebhooks import Webhook

from tests.api_errors import assert_error
from tests.conftest import create_tenant
from tests.fixtures.db import row_id, run_sql
from tests.fixtures.server import ENCRYPTION_KEY, LiveServer, running_server
from webhookd.models import Tenant
from webhookd.security import SecretBox
from webhookd.verify import WebhookVerificationError, verify_standard, verify_x_webhook_signature

TENANTS = "/api/v1/tenants"


def test_a_database_dump_holds_neither_keys_nor_secrets(server, tenant) -> None:
    (row,) = run_sql(
        server.settings,
        "SELECT api_key_hash, secret_encrypted FROM tenants WHERE id = :id",
        id=row_id(server.settings, Tenant, tenant.id),
    )
    key_hash, encrypted = row
    dump = " ".join(str(v) for r in run_sql(server.settings, "SELECT * FROM tenants") for v in r)
    assert tenant.api_key not in dump and tenant.secret_key not in dump
    # Not a plain hash of the key either: it is keyed with the server's pepper.
    assert key_hash != hashlib.sha256(tenant.api_key.encode()).hexdigest()
    assert SecretBox(ENCRYPTION_KEY).decrypt(encrypted) == tenant.secret_key


def test_reveal_returns_the_current_secret_to_its_tenant_and_the_admin(
    admin, tenant, other_tenant
) -> None:
    own = tenant.client.get(f"{TENANTS}/{tenant.id}/secret")
    assert own.status_code == 200, own.text
    assert own.json() == {
        "id": tenant.id,
        "secret_key": tenant.secret_key,
        "previous_secret_expires_at": None,
    }
    assert admin.get(f"{TENANTS}/{tenant.id}/secret").json()["secret_key"] == tenant.secret_key
    other = other_tenant.client.get(f"{TENANTS}/{tenant.id}/secret")
    assert_error(other, 404, "not_found")
    assert tenant.secret_key not in other.text


def _deliver(tenant, receiver, path: str, event_id: str):
    tenant.add_endpoint(receiver.url(path))
    assert tenant.publish("user.created", event_id=event_id).status_code == 202
    (request,) = receiver.wait_for(1, path)
    return request


def test_rotation_with_grace_signs_with_both_secrets(tenant, receiver) -> None:
    old = tenant.secret_key
    rotated = tenant.client.post(
        f"{TENANTS}/{tenant.id}/rotate-secret", json={"grace_period_seconds": 3600}
    )
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret_key"]
    assert new != old and new.startswith("whsec_")
    assert rotated.json()["previous_secret_expires_at"] is not None
    request = _deliver(tenant, receiver, "/rotate-grace", "evt_rotate_grace")
    signatures = request.header("webhook-signature").split()
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    for secret in (new, old):  # a receiver holding either secret accepts the webhook
        Webhook(secret).verify(request.body, request.headers)
        verify_standard(request.body, request.headers, secret)
    verify_x_webhook_signature(request.body, request.header("X-Webhook-Signature"), new)
    revealed = tenant.client.get(f"{TENANTS}/{tenant.id}/secret").json()
    assert revealed["secret_key"] == new and revealed["previous_secret_expires_at"]


def test_rotation_without_grace_drops_the_old_secret_at_once(tenant, receiver) -> None:
    old = tenant.secret_key
    rotated = tenant.client.post(
        f"{TENANTS}/{tenant.id}/rotate-secret", json={"grace_period_seconds": 0}
    )
    new = rotated.json()["secret_key"]
    request = _deliver(tenant, receiver, "/rotate-now", "evt_rotate_now")
    assert len(request.header("webhook-signature").split()) == 1
    verify_standard(request.body, request.headers, new)
    with pytest.raises(WebhookVerificationError):
        verify_standard(request.body, request.headers, old)


@pytest.mark.parametrize("grace", [-1, 7 * 86400 + 1, "x"])
def test_rotation_grace_is_bounded(tenant, grace) -> None:
    response = tenant.client.post(
        f"{TENANTS}/{tenant.id}/rotate-secret", json={"grace_period_seconds": grace}
    )
    assert_error(response, 422, "validation_error")
    assert tenant.client.get(f"{TENANTS}/{tenant.id}/secret").json()["secret_key"] == (
        tenant.secret_key
    )


def test_other_tenant_cannot_rotate(tenant, other_tenant) -> None:
    response = other_tenant.client.post(f"{TENANTS}/{tenant.id}/rotate-secret", json={})
    assert_error(response, 404, "not_found")
    assert tenant.client.get(f"{TENANTS}/{tenant.id}/secret").json()["secret_key"] == (
        tenant.secret_key
    )


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[LiveServer]:
    with running_server(
        tmp_path_factory, "strict", backend=backend, auth_failures_per_minute=60
    ) as srv:
        yield srv


def test_repeated_bad_keys_are_throttled_per_address(strict_server) -> None:
    with strict_server.client() as anonymous:
        admin = strict_server.client(**{"X-Admin-Key": "whadm_test-admin-key"})
        good = create_tenant(strict_server, admin)
        failures = 0
        while True:  # 60 failures a minute: the bucket empties after ~60 wrong keys
            wrong = anonymous.get("/api/v1/events", headers={"X-API-Key": "whk_guess"})
            if wrong.status_code == 429:
                break
            assert_error(wrong, 401, "unauthorized")
            failures += 1
            assert failures < 200, "never throttled"
        assert failures >= 60
        error = assert_error(wrong, 429, "auth_throttled")
        assert int(wrong.headers["Retry-After"]) >= 1 and "address" in error["message"]
        # While throttled, even a right key from that address waits: no guessing oracle.
        assert_error(good.client.get("/api/v1/events"), 429, "auth_throttled")
        assert_error(admin.get(TENANTS), 429, "auth_throttled")
        # Missing keys are not guesses and do not count; they still get their 401.
        assert anonymous.get("/health").status_code == 200
        time.sleep(1.5)  # one failure refills every second
        assert good.client.get("/api/v1/events").status_code == 200
        good.client.close()
        admin.close()
