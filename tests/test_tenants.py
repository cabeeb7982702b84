"""Tenants API: admin-only creation and listing, scoped reads, updates and key rotation."""

from __future__ import annotations

import base64
import datetime as dt

import httpx
import pytest

from tests.api_errors import assert_error, field_names
from tests.conftest import create_tenant
from tests.fixtures.server import ADMIN_KEY

TENANTS = "/api/v1/tenants"
READ_FIELDS = {
    "id",
    "uid",
    "name",
    "email",
    "rate_limit",
    "operational_webhook_url",
    "strict_event_types",
    "retention_days",
    "portal_frame_ancestors",
    "portal_brand_color",
    "portal_logo_url",
    "delivery_format",  # issue 17: "webhookd" or "svix"
    "metadata",  # issue 17: labels (a Svix application's metadata)
    "api_key_prefix",
    "created_at",
}
CREATED_FIELDS = READ_FIELDS | {"api_key", "secret_key"}


def all_tenant_ids(admin: httpx.Client) -> list[int]:
    ids: list[int] = []
    cursor = None
    while True:
        params = {"limit": 100} | ({"cursor": cursor} if cursor is not None else {})
        page = admin.get(TENANTS, params=params)
        assert page.status_code == 200, page.text
        ids += [t["id"] for t in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return ids


# --- creation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing X-Admin-Key header"),
        ({"X-Admin-Key": "whadm_wrong"}, "invalid admin key"),
        ({"X-Admin-Key": ADMIN_KEY + "x"}, "invalid admin key"),
        ({"X-API-Key": "whk_not-an-admin"}, "missing X-Admin-Key header"),
    ],
    ids=["missing", "wrong", "admin-key-plus-suffix", "api-key-instead"],
)
def test_create_requires_the_admin_key(server, admin, headers, message) -> None:
    before = all_tenant_ids(admin)
    with server.client(**headers) as client:
        response = client.post(TENANTS, json={"name": "Nope", "email": "nope@example.com"})
    error = assert_error(response, 401, "unauthorized")
    assert set(error) == {"code", "message"}
    assert error["message"] == message
    assert all_tenant_ids(admin) == before


def test_a_tenant_key_cannot_create_tenants(server, admin, tenant) -> None:
    before = all_tenant_ids(admin)
    response = tenant.client.post(TENANTS, json={"name": "Nope", "email": "nope@example.com"})
    assert_error(response, 401, "unauthorized")
    assert all_tenant_ids(admin) == before


def test_create_returns_the_credentials_once(admin) -> None:
    started = dt.datetime.now(dt.UTC)
    response = admin.post(TENANTS, json={"name": "  Acme Corp  ", "email": "hooks@acme.example"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == CREATED_FIELDS
    assert isinstance(body["id"], str) and body["id"].startswith("tnt_")
    assert body["name"] == "Acme Corp"
    assert body["email"] == "hooks@acme.example"
    assert body["rate_limit"] == 100

    assert body["api_key"].startswith("whk_")
    assert len(body["api_key"]) >= len("whk_") + 40

    prefix, _, encoded = body["secret_key"].partition("_")
    assert prefix == "whsec"
    assert len(base64.b64decode(encoded, validate=True)) == 32

    created_at = dt.datetime.fromisoformat(body["created_at"].replace("Z", "+00:00"))
    assert created_at.tzinfo is not None
    assert started - dt.timedelta(seconds=5) <= created_at <= dt.datetime.now(dt.UTC)


def test_every_tenant_gets_its_own_keys(server, admin) -> None:
    first = admin.post(TENANTS, json={"name": "One", "email": "one@example.com"}).json()
    second = admin.post(TENANTS, json={"name": "Two", "email": "two@example.com"}).json()
    assert first["id"] != second["id"]
    assert first["api_key"] != second["api_key"]
    assert first["secret_key"] != second["secret_key"]


def test_create_keeps_an_explicit_rate_limit(admin) -> None:
    response = admin.post(
        TENANTS, json={"name": "Fast", "email": "fast@example.com", "rate_limit": 2500}
    )
    assert response.status_code == 201, response.text
    assert response.json()["rate_limit"] == 2500


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "a@example.com"}, "name"),
        ({"name": "   ", "email": "a@example.com"}, "name"),
        ({"name": "A"}, "email"),
        ({"name": "A", "email": "not-an-email"}, "email"),
        ({"name": "A", "email": "a@example.com", "rate_limit": 0}, "rate_limit"),
        ({"name": "A", "email": "a@example.com", "rate_limit": 1_000_001}, "rate_limit"),
        ({"name": "A", "email": "a@example.com", "api_key": "whk_mine"}, "api_key"),
    ],
    ids=["no-name", "blank-name", "no-email", "bad-email", "rate-0", "rate-huge", "extra"],
)
def test_create_validates_the_body(admin, body, field) -> None:
    before = all_tenant_ids(admin)
    error = assert_error(admin.post(TENANTS, json=body), 422, "validation_error")
    assert field in field_names(error)
    assert all_tenant_ids(admin) == before


# --- reading --------------------------------------------------------------------------


def test_get_with_own_key_and_with_admin_key(admin, tenant) -> None:
    own = tenant.client.get(f"{TENANTS}/{tenant.id}")
    by_admin = admin.get(f"{TENANTS}/{tenant.id}")
    assert own.status_code == 200, own.text
    assert by_admin.status_code == 200, by_admin.text
    assert own.json() == by_admin.json()
    body = own.json()
    assert set(body) == READ_FIELDS
    assert body["id"] == tenant.id
    assert body["rate_limit"] == 10_000
    assert body["api_key_prefix"] == tenant.api_key[:8]


def test_secrets_never_appear_in_reads(admin, tenant) -> None:
    responses = [
        tenant.client.get(f"{TENANTS}/{tenant.id}"),
        admin.get(f"{TENANTS}/{tenant.id}"),
        admin.get(TENANTS, params={"limit": 100}),
    ]
    assert tenant.id in [t["id"] for t in responses[2].json()["items"]]
    for response in responses:
        assert response.status_code == 200, response.text
        assert "api_key" not in response.text.replace("api_key_prefix", "")
        assert "secret_key" not in response.text
        assert tenant.api_key not in response.text
        assert tenant.secret_key not in response.text
        assert tenant.secret_key.removeprefix("whsec_") not in response.text


def test_another_tenants_key_sees_404_not_403(tenant, other_tenant) -> None:
    response = other_tenant.client.get(f"{TENANTS}/{tenant.id}")
    error = assert_error(response, 404, "not_found")
    # Indistinguishable from an id that does not exist.
    missing = assert_error(other_tenant.client.get(f"{TENANTS}/987654321"), 404, "not_found")
    assert error["message"] == missing["message"].replace("987654321", str(tenant.id))
    assert tenant.secret_key not in response.text


@pytest.mark.parametrize("tenant_id", [987654321, 0, 2**63 - 1])
def test_unknown_id_is_404(admin, tenant, tenant_id) -> None:
    assert_error(admin.get(f"{TENANTS}/{tenant_id}"), 404, "not_found")
    assert_error(tenant.client.get(f"{TENANTS}/{tenant_id}"), 404, "not_found")


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-API-Key": "whk_wrong"}, {"X-Admin-Key": "whadm_wrong"}],
    ids=["none", "wrong-api-key", "wrong-admin-key"],
)
def test_get_requires_a_valid_key(server, tenant, headers) -> None:
    with server.client(**headers) as client:
        assert_error(client.get(f"{TENANTS}/{tenant.id}"), 401, "unauthorized")


def test_a_wrong_admin_key_is_not_rescued_by_a_valid_api_key(server, tenant) -> None:
    with server.client(**{"X-Admin-Key": "whadm_wrong", "X-API-Key": tenant.api_key}) as client:
        assert_error(client.get(f"{TENANTS}/{tenant.id}"), 401, "unauthorized")


# --- listing --------------------------------------------------------------------------


@pytest.mark.parametrize("as_tenant", [True, False], ids=["tenant-key", "no-key"])
def test_list_is_admin_only(server, tenant, as_tenant) -> None:
    if as_tenant:
        response = tenant.client.get(TENANTS)
    else:
        with server.client() as client:
            response = client.get(TENANTS)
    assert_error(response, 401, "unauthorized")


def test_list_pages_with_limit_and_cursor(server, admin) -> None:
    created = [create_tenant(server, admin) for _ in range(5)]
    for ctx in created:
        ctx.client.close()
    created_ids = [ctx.id for ctx in created]

    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor is not None else {})
        response = admin.get(TENANTS, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"items", "next_cursor"}
        items = page["items"]
        assert len(items) <= 2
        for item in items:
            assert set(item) == READ_FIELDS
        pages += 1
        seen += [item["id"] for item in items]
        if page["next_cursor"] is None:
            assert len(items) < 2
            break
        assert len(items) == 2
        cursor = page["next_cursor"]
        assert pages < 1000

    assert seen == sorted(seen)
    assert len(seen) == len(set(seen))
    assert set(created_ids) <= set(seen)
    assert seen == all_tenant_ids(admin)

    # A cursor starts strictly after the last item of its page.
    first = admin.get(TENANTS, params={"limit": len(seen) - 3}).json()
    after = admin.get(TENANTS, params={"cursor": first["next_cursor"], "limit": 2}).json()
    assert [t["id"] for t in after["items"]] == seen[-3:-1]


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"cursor": "-1"}])
def test_list_rejects_bad_paging(admin, params) -> None:
    error = assert_error(admin.get(TENANTS, params=params), 422, "validation_error")
    assert field_names(error) == list(params)


# --- updates --------------------------------------------------------------------------


def test_admin_patch_changes_the_rate_limit(admin, tenant) -> None:
    before = admin.get(f"{TENANTS}/{tenant.id}").json()
    response = admin.patch(f"{TENANTS}/{tenant.id}", json={"rate_limit": 7})
    assert response.status_code == 200, response.text
    assert response.json() == {**before, "rate_limit": 7}
    assert tenant.client.get(f"{TENANTS}/{tenant.id}").json() == {**before, "rate_limit": 7}


def test_admin_patch_changes_name_and_email_only_when_given(admin, tenant) -> None:
    before = admin.get(f"{TENANTS}/{tenant.id}").json()
    response = admin.patch(f"{TENANTS}/{tenant.id}", json={"name": "Renamed"})
    assert response.status_code == 200, response.text
    assert response.json() == {**before, "name": "Renamed"}
    response = admin.patch(f"{TENANTS}/{tenant.id}", json={"email": "new@example.com"})
    assert response.json() == {**before, "name": "Renamed", "email": "new@example.com"}


def test_patch_is_admin_only(admin, tenant) -> None:
    before = admin.get(f"{TENANTS}/{tenant.id}").json()
    response = tenant.client.patch(f"{TENANTS}/{tenant.id}", json={"rate_limit": 1_000_000})
    assert_error(response, 401, "unauthorized")
    assert admin.get(f"{TENANTS}/{tenant.id}").json() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"rate_limit": 0}, "rate_limit"),
        ({"email": "x"}, "email"),
        ({"api_key": "k"}, "api_key"),
        ({"rate_limit": None}, "rate_limit"),
        ({"name": None}, "name"),
    ],
)
def test_patch_validates_and_changes_nothing_on_error(admin, tenant, body, field) -> None:
    before = admin.get(f"{TENANTS}/{tenant.id}").json()
    error = assert_error(admin.patch(f"{TENANTS}/{tenant.id}", json=body), 422, "validation_error")
    assert field in field_names(error)
    assert admin.get(f"{TENANTS}/{tenant.id}").json() == before


def test_patch_unknown_tenant_is_404(admin) -> None:
    assert_error(admin.patch(f"{TENANTS}/987654321", json={"rate_limit": 5}), 404, "not_found")


# --- API key rotation -----------------------------------------------------------------


def test_rotate_own_key(server, tenant) -> None:
    response = tenant.client.post(f"{TENANTS}/{tenant.id}/rotate-api-key")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"id", "api_key", "api_key_prefix"}
    assert body["id"] == tenant.id
    new_key = body["api_key"]
    assert new_key.startswith("whk_")
    assert new_key != tenant.api_key
    assert body["api_key_prefix"] == new_key[:8]

    # The old key stops working at once, on every route.
    assert_error(tenant.client.get(f"{TENANTS}/{tenant.id}"), 401, "unauthorized")
    assert_error(tenant.publish("user.created"), 401, "unauthorized")

    with server.client(**{"X-API-Key": new_key}) as client:
        read = client.get(f"{TENANTS}/{tenant.id}")
        assert read.status_code == 200, read.text
        assert read.json()["api_key_prefix"] == new_key[:8]
        published = client.post(
            "/api/v1/events",
            json={"event_id": "after-rotation", "event_type": "a.b", "payload": {}},
        )
        assert published.status_code == 202, published.text


def test_admin_rotates_a_tenants_key(server, admin, tenant) -> None:
    response = admin.post(f"{TENANTS}/{tenant.id}/rotate-api-key")
    assert response.status_code == 200, response.text
    new_key = response.json()["api_key"]
    assert_error(tenant.client.get(f"{TENANTS}/{tenant.id}"), 401, "unauthorized")
    with server.client(**{"X-API-Key": new_key}) as client:
        assert client.get(f"{TENANTS}/{tenant.id}").status_code == 200


def test_rotating_twice_retires_both_earlier_keys(server, tenant) -> None:
    second = tenant.client.post(f"{TENANTS}/{tenant.id}/rotate-api-key").json()["api_key"]
    with server.client(**{"X-API-Key": second}) as client:
        third = client.post(f"{TENANTS}/{tenant.id}/rotate-api-key").json()["api_key"]
        assert_error(client.get(f"{TENANTS}/{tenant.id}"), 401, "unauthorized")
    assert len({tenant.api_key, second, third}) == 3
    with server.client(**{"X-API-Key": third}) as client:
        assert client.get(f"{TENANTS}/{tenant.id}").status_code == 200


def test_another_tenant_cannot_rotate_my_key(tenant, other_tenant) -> None:
    response = other_tenant.client.post(f"{TENANTS}/{tenant.id}/rotate-api-key")
    assert_error(response, 404, "not_found")
    assert tenant.client.get(f"{TENANTS}/{tenant.id}").status_code == 200
    assert other_tenant.client.get(f"{TENANTS}/{other_tenant.id}").status_code == 200


def test_rotate_unknown_tenant_is_404(admin) -> None:
    assert_error(admin.post(f"{TENANTS}/987654321/rotate-api-key"), 404, "not_found")
