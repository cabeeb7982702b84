"""Issue 13: a SaaS backend publishes for its customers with the operator's key, naming the
tenant (`tenant_id` or `uid`), under the tenant's own rate limit, idempotency and
validation; a tenant's key can only ever publish for its own tenant."""

from __future__ import annotations

import itertools

from tests.api_errors import assert_error, field_names
from tests.conftest import create_tenant
from tests.fixtures.delivery import wait_final

_n = itertools.count()


def _event(**fields):
    return {
        "event_id": f"evt_admin_{next(_n)}",
        "event_type": "user.created",
        "payload": {},
        **fields,
    }


def test_the_admin_key_publishes_for_a_tenant_named_by_id_or_uid(server, admin, receiver) -> None:
    uid = f"acme-{next(_n)}"
    created = admin.post(
        "/api/v1/tenants", json={"name": "Acme", "email": "ops@acme.test", "uid": uid}
    ).json()
    with server.client(**{"X-API-Key": created["api_key"]}) as own:
        own.post(f"/api/v1/tenants/{uid}/endpoints", json={"url": receiver.url("/acme")})
        sent = []
        # Twice each way: the second goes through the fast path (the tenant is cached).
        for body in [_event(tenant_id=created["id"]), _event(uid=uid)] + [
            _event(tenant_id=created["id"]),
            _event(uid=uid),
        ]:
            response = admin.post("/api/v1/events", json=body)
            assert response.status_code == 202, response.text
            sent.append(body["event_id"])
        for event_id in sent:
            assert wait_final(own, event_id)["status"] == "succeeded"
        # The same idempotency as with the tenant's own key.
        same = admin.post("/api/v1/events", json=_event(uid=uid) | {"event_id": sent[0]})
        assert same.status_code == 200 and same.json()["duplicate"] is True
        other = _event(uid=uid) | {"event_id": sent[0], "payload": {"changed": True}}
        assert_error(admin.post("/api/v1/events", json=other), 409, "idempotency_conflict")
        assert [e["event_id"] for e in own.get("/api/v1/events").json()["items"]] == sent[::-1]
    assert len(receiver.received("/acme")) == 4


def test_the_tenants_rate_limit_applies_to_the_operators_publishes(server, admin) -> None:
    tenant = create_tenant(server, admin, rate_limit=3)
    statuses = [
        admin.post("/api/v1/events", json=_event(tenant_id=tenant.id)).status_code for _ in range(5)
    ]
    assert statuses[:3] == [202] * 3 and statuses[3:] == [429, 429]
    tenant.client.close()


def test_the_admin_key_must_name_a_tenant_that_exists(admin) -> None:
    missing = admin.post("/api/v1/events", json=_event())
    assert field_names(assert_error(missing, 422, "validation_error")) == ["tenant_id"]
    unknown = admin.post("/api/v1/events", json=_event(uid="nobody-here"))
    assert_error(unknown, 404, "not_found")
    both = admin.post("/api/v1/events", json=_event(uid="a", tenant_id="b"))
    assert_error(both, 422, "validation_error")


def test_a_tenant_key_publishes_only_for_its_own_tenant(tenant, other_tenant) -> None:
    own = tenant.client.post("/api/v1/events", json=_event(tenant_id=tenant.id))
    assert own.status_code == 202
    for _ in range(2):  # route, then fast path
        other = tenant.client.post("/api/v1/events", json=_event(tenant_id=other_tenant.id))
        assert_error(other, 404, "not_found")
