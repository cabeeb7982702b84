"""Issue 13: a tenant's optional uid (the adopter's own customer id) names it wherever a
tenant id does; uids are unique per deployment."""

from __future__ import annotations

import itertools

import pytest

from tests.api_errors import assert_error, field_names

_n = itertools.count()


def _uid() -> str:
    return f"customer-{next(_n)}-{id(_n)}"


def _create(admin, **fields):
    body = {"name": "Uid Co", "email": "ops@example.com", **fields}
    return admin.post("/api/v1/tenants", json=body)


def test_a_uid_names_the_tenant_in_every_tenant_path(server, admin, receiver) -> None:
    uid = _uid()
    created = _create(admin, uid=uid).json()
    assert created["uid"] == uid
    with server.client(**{"X-API-Key": created["api_key"]}) as own:
        for client in (own, admin):
            got = client.get(f"/api/v1/tenants/{uid}")
            assert got.status_code == 200 and got.json()["id"] == created["id"]
        endpoint = own.post(
            f"/api/v1/tenants/{uid}/endpoints", json={"url": receiver.url("/uid")}
        ).json()
        assert endpoint["tenant_id"] == created["id"]
        listed = admin.get(f"/api/v1/tenants/{uid}/endpoints").json()["items"]
        assert [e["id"] for e in listed] == [endpoint["id"]]
        assert own.get(f"/api/v1/tenants/{uid}/secret").json()["id"] == created["id"]


def test_a_uid_is_unique(admin) -> None:
    uid = _uid()
    assert _create(admin, uid=uid).status_code == 201
    assert_error(_create(admin, uid=uid), 409, "uid_taken")
    other = _create(admin).json()
    response = admin.patch(f"/api/v1/tenants/{other['id']}", json={"uid": uid})
    assert_error(response, 409, "uid_taken")


@pytest.mark.parametrize("uid", ["tnt_mine", "a/b", "", "x" * 256, "a b"])
def test_an_invalid_uid_is_a_422(admin, uid: str) -> None:
    response = _create(admin, uid=uid)
    assert field_names(assert_error(response, 422, "validation_error")) == ["uid"]


def test_a_uid_can_be_changed_and_removed(server, admin) -> None:
    old, new = _uid(), _uid()
    created = _create(admin, uid=old).json()
    assert admin.patch(f"/api/v1/tenants/{old}", json={"uid": new}).json()["uid"] == new
    assert_error(admin.get(f"/api/v1/tenants/{old}"), 404, "not_found")
    assert admin.get(f"/api/v1/tenants/{new}").json()["id"] == created["id"]
    assert admin.patch(f"/api/v1/tenants/{new}", json={"uid": None}).json()["uid"] is None


def test_another_tenants_uid_looks_missing(tenant, admin) -> None:
    uid = _uid()
    _create(admin, uid=uid)
    assert_error(tenant.client.get(f"/api/v1/tenants/{uid}"), 404, "not_found")
    assert_error(tenant.client.get(f"/api/v1/tenants/{uid}/endpoints"), 404, "not_found")
