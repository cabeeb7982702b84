"""The event-type catalog: CRUD, JSON Schemas checked on publish (fast path and route),
strict_event_types, tenant isolation; wildcard subscriptions and payload filters."""

from __future__ import annotations

import itertools

import httpx
import pytest

from tests.api_errors import assert_error, field_names

_n = itertools.count()

INVOICE_SCHEMA = {
    "type": "object",
    "properties": {
        "amount": {"type": "number", "minimum": 0},
        "customer": {
            "type": "object",
            "properties": {"country": {"type": "string", "enum": ["DE", "FR", "US"]}},
            "required": ["country"],
        },
        "lines": {"type": "array", "items": {"type": "object", "required": ["sku"]}},
    },
    "required": ["amount"],
}
FIELDS = {"name", "description", "schema", "archived", "created_at", "updated_at"}


def types_url(tenant_id: str, name: str | None = None) -> str:
    base = f"/api/v1/tenants/{tenant_id}/event-types"
    return base if name is None else f"{base}/{name}"


def unique(prefix: str = "invoice") -> str:
    return f"{prefix}{next(_n)}"


def publish(
    client: httpx.Client, event_type: str, payload: dict, **extra: object
) -> httpx.Response:
    return client.post(
        "/api/v1/events",
        json={
            "event_id": f"evt_{unique('e')}",
            "event_type": event_type,
            "payload": payload,
            **extra,
        },
    )


@pytest.fixture(params=["tenant-key", "admin-key"])
def caller(request, admin, tenant) -> httpx.Client:
    return tenant.client if request.param == "tenant-key" else admin


def test_crud(caller, tenant) -> None:
    name = unique() + ".paid"
    created = caller.post(
        types_url(tenant.id),
        json={"name": name, "description": "An invoice was paid", "schema": INVOICE_SCHEMA},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) == FIELDS
    assert body["name"] == name and body["schema"] == INVOICE_SCHEMA and not body["archived"]
    assert_error(caller.post(types_url(tenant.id), json={"name": name}), 409, "event_type_exists")
    assert caller.get(types_url(tenant.id, name)).json() == body

    patched = caller.patch(types_url(tenant.id, name), json={"description": "paid", "schema": None})
    assert patched.status_code == 200, patched.text
    assert patched.json()["description"] == "paid" and patched.json()["schema"] is None

    archived = caller.patch(types_url(tenant.id, name), json={"archived": True})
    assert archived.json()["archived"] is True
    listed = caller.get(types_url(tenant.id)).json()["items"]
    assert name not in [t["name"] for t in listed]  # archived types are hidden by default
    listed = caller.get(types_url(tenant.id), params={"include_archived": "true"}).json()["items"]
    assert name in [t["name"] for t in listed]

    assert caller.delete(types_url(tenant.id, name)).status_code == 204
    assert_error(caller.get(types_url(tenant.id, name)), 404, "not_found")
    assert_error(caller.delete(types_url(tenant.id, name)), 404, "not_found")


def test_listing_pages(tenant) -> None:
    names = [unique("page.") for _ in range(3)]
    for name in names:
        assert tenant.client.post(types_url(tenant.id), json={"name": name}).status_code == 201
    first = tenant.client.get(types_url(tenant.id), params={"limit": 2}).json()
    second = tenant.client.get(
        types_url(tenant.id), params={"limit": 2, "cursor": first["next_cursor"]}
    ).json()
    assert [t["name"] for t in first["items"] + second["items"]] == names


@pytest.mark.parametrize(
    ("schema", "says"),
    [
        ({"type": "nonsense"}, "schema.type"),
        ({"properties": {"a": {"minimum": "x"}}}, "schema.properties.a.minimum"),
        ({"$ref": "http://169.254.169.254/latest"}, "no remote $ref"),
        ({"$ref": "#/$defs/missing"}, "missing"),
        ({"type": "string", "pattern": "(?=a)b"}, "regex"),
    ],
)
def test_invalid_schemas_are_422_naming_the_problem(tenant, schema, says) -> None:
    response = tenant.client.post(types_url(tenant.id), json={"name": unique(), "schema": schema})
    error = assert_error(response, 422, "validation_error")
    assert field_names(error) == ["schema"]
    assert says in error["message"], error


@pytest.mark.parametrize(
    "body",
    [
        {"name": "has space"},
        {"name": ""},
        {"name": "x", "schema": 5},
        {"name": "x", "schema": [1]},
        {"name": "x", "archived": "maybe"},
        {"name": "x", "unknown": 1},
        {"name": "x", "description": "nul\u0000"},
    ],
)
def test_bad_bodies_are_422(tenant, body) -> None:
    assert_error(tenant.client.post(types_url(tenant.id), json=body), 422, "validation_error")


def test_patch_refuses_an_invalid_schema_and_keeps_the_old_one(tenant) -> None:
    name = unique()
    tenant.client.post(types_url(tenant.id), json={"name": name, "schema": INVOICE_SCHEMA})
    bad = tenant.client.patch(types_url(tenant.id, name), json={"schema": {"type": 12}})
    assert field_names(assert_error(bad, 422, "validation_error")) == ["schema"]
    null_archived = tenant.client.patch(types_url(tenant.id, name), json={"archived": None})
    assert_error(null_archived, 422, "validation_error")
    assert tenant.client.get(types_url(tenant.id, name)).json()["schema"] == INVOICE_SCHEMA


@pytest.mark.parametrize("route", ["fast-path", "route"])
def test_publish_is_checked_against_the_schema(tenant, admin, receiver, route) -> None:
    name = unique()
    tenant.client.post(types_url(tenant.id), json={"name": name, "schema": INVOICE_SCHEMA})
    tenant.add_endpoint(receiver.url(f"/schema/{name}"))
    if route == "fast-path":  # the key is cached after the first publish: later ones are fast
        client, extra = tenant.client, {}
        assert publish(client, name, {"amount": 1}).status_code == 202
    else:  # the admin key naming a tenant it has not named before goes through the route
        client, extra = admin, {"tenant_id": tenant.id}

    good = publish(client, name, {"amount": 5, "customer": {"country": "DE"}}, **extra)
    assert good.status_code == 202, good.text

    cases = [
        ({"amount": -1}, "payload.amount", "minimum"),
        ({}, "payload", "required"),
        ({"amount": 1, "customer": {"country": "XX"}}, "payload.customer.country", "enum"),
        ({"amount": 1, "lines": [{"sku": "a"}, {}]}, "payload.lines[1]", "required"),
        ({"amount": "ten"}, "payload.amount", "type"),
    ]
    for payload, path, rule in cases:
        event_id = f"evt_{unique('bad')}"
        refused = client.post(
            "/api/v1/events",
            json={"event_id": event_id, "event_type": name, "payload": payload, **extra},
        )
        error = assert_error(refused, 422, "schema_violation")
        assert field_names(error) == [path], error
        assert repr(rule) in error["message"] and name in error["message"], error
        # Nothing was stored: the event does not exist and its event_id is still free.
        assert_error(tenant.client.get(f"/api/v1/events/{event_id}"), 404, "not_found")
    received = receiver.wait_for(2 if route == "fast-path" else 1, f"/schema/{name}")
    assert all(b'"amount":-1' not in r.body for r in received)


def test_schema_changes_apply_to_the_next_publish(tenant) -> None:
    name = unique()
    tenant.client.post(types_url(tenant.id), json={"name": name})
    assert publish(tenant.client, name, {"amount": -5}).status_code == 202
    tenant.client.patch(types_url(tenant.id, name), json={"schema": INVOICE_SCHEMA})
    assert_error(publish(tenant.client, name, {"amount": -5}), 422, "schema_violation")
    tenant.client.patch(types_url(tenant.id, name), json={"schema": None})
    assert publish(tenant.client, name, {"amount": -5}).status_code == 202
    tenant.client.patch(types_url(tenant.id, name), json={"schema": INVOICE_SCHEMA})
    assert tenant.client.delete(types_url(tenant.id, name)).status_code == 204
    assert publish(tenant.client, name, {"amount": -5}).status_code == 202


def test_strict_event_types(tenant, admin) -> None:
    known, archived = unique("strict."), unique("strict.")
    tenant.client.post(types_url(tenant.id), json={"name": known})
    tenant.client.post(types_url(tenant.id), json={"name": archived, "archived": True})
    assert publish(tenant.client, "not.in.catalog", {}).status_code == 202  # off by default

    on = admin.patch(f"/api/v1/tenants/{tenant.id}", json={"strict_event_types": True})
    assert on.status_code == 200 and on.json()["strict_event_types"] is True
    error = assert_error(publish(tenant.client, "not.in.catalog", {}), 422, "validation_error")
    assert field_names(error) == ["event_type"] and "catalog" in error["message"]
    assert_error(publish(tenant.client, archived, {}), 422, "validation_error")
    assert publish(tenant.client, known, {}).status_code == 202
    # the admin key publishing for the tenant follows the same rule
    assert_error(publish(admin, "not.in.catalog", {}, tenant_id=tenant.id), 422, "validation_error")
    # a tenant key cannot change the setting
    own = tenant.client.patch(f"/api/v1/tenants/{tenant.id}", json={"strict_event_types": False})
    assert own.status_code in (401, 403), own.text
    assert_error(
        admin.patch(f"/api/v1/tenants/{tenant.id}", json={"strict_event_types": None}),
        422,
        "validation_error",
    )
    admin.patch(f"/api/v1/tenants/{tenant.id}", json={"strict_event_types": False})
    assert publish(tenant.client, "not.in.catalog", {}).status_code == 202


def test_tenants_do_not_share_catalogs(tenant, other_tenant) -> None:
    name = unique()
    tenant.client.post(types_url(tenant.id), json={"name": name, "schema": INVOICE_SCHEMA})
    assert_error(other_tenant.client.get(types_url(tenant.id, name)), 404, "not_found")
    assert_error(other_tenant.client.get(types_url(tenant.id)), 404, "not_found")
    assert_error(
        other_tenant.client.patch(types_url(tenant.id, name), json={"archived": True}),
        404,
        "not_found",
    )
    assert_error(other_tenant.client.delete(types_url(tenant.id, name)), 404, "not_found")
    assert other_tenant.client.get(types_url(other_tenant.id, name)).status_code == 404
    # the other tenant's publishes of the same type are not checked against this schema
    assert publish(other_tenant.client, name, {"amount": -1}).status_code == 202
    assert_error(publish(tenant.client, name, {"amount": -1}), 422, "schema_violation")


def test_wildcard_subscriptions(tenant, receiver) -> None:
    prefix = unique("inv")
    path = f"/wild/{prefix}"
    endpoint = tenant.add_endpoint(receiver.url(path), event_types=[f"{prefix}.*"])
    assert endpoint["event_types"] == [f"{prefix}.*"]
    routed = {
        f"{prefix}.paid": True,
        f"{prefix}.payment.failed": True,
        prefix: False,
        f"{prefix}s.paid": False,
        f"x.{prefix}.paid": False,
    }
    for event_type, expected in routed.items():
        answer = publish(tenant.client, event_type, {"n": 1})
        assert answer.status_code == 202, answer.text
        endpoints = [d["endpoint_id"] for d in answer.json()["deliveries"]]
        assert (endpoint["id"] in endpoints) is expected, event_type
    receiver.wait_for(2, path)


@pytest.mark.parametrize(
    "selector", ["*", ".*", "invoice.*.paid", "invoice..*", "invoice*", "a b.*"]
)
def test_bad_wildcards_are_422(tenant, receiver, selector) -> None:
    response = tenant.client.post(
        f"/api/v1/tenants/{tenant.id}/endpoints",
        json={"url": receiver.url("/x"), "event_types": [selector]},
    )
    assert_error(response, 422, "validation_error")


def test_payload_filters_route_only_matching_events(tenant, receiver) -> None:
    spec = {"amount": {"$gte": 100}, "customer.country": {"$in": ["DE", "FR"]}}
    path = f"/filter/{unique('f')}"
    filtered = tenant.add_endpoint(receiver.url(path), filter=spec)
    assert filtered["filter"] == spec
    everything = tenant.add_endpoint(receiver.url(path + "/all"))
    assert everything["filter"] is None
    payloads = [
        ({"amount": 150, "customer": {"country": "DE"}}, True),
        ({"amount": 99, "customer": {"country": "DE"}}, False),
        ({"amount": 150, "customer": {"country": "US"}}, False),
        ({"amount": "150", "customer": {"country": "FR"}}, False),  # a string is not >= 100
        ({"customer": {"country": "FR"}}, False),  # missing path
        ({"amount": 100.0, "customer": {"country": "FR"}}, True),
    ]
    for payload, expected in payloads:
        answer = publish(tenant.client, "order.created", payload)
        assert answer.status_code == 202, answer.text
        endpoints = [d["endpoint_id"] for d in answer.json()["deliveries"]]
        assert (filtered["id"] in endpoints) is expected, payload
        assert everything["id"] in endpoints
    receiver.wait_for(2, path)
    receiver.wait_for(len(payloads), path + "/all")

    url = f"/api/v1/tenants/{tenant.id}/endpoints/{filtered['id']}"
    cleared = tenant.client.patch(url, json={"filter": None})
    assert cleared.status_code == 200 and cleared.json()["filter"] is None
    answer = publish(tenant.client, "order.created", {"amount": 1})
    assert filtered["id"] in [d["endpoint_id"] for d in answer.json()["deliveries"]]
    changed = tenant.client.patch(url, json={"filter": {"$not": {"test": True}}})
    assert changed.status_code == 200, changed.text
    answer = publish(tenant.client, "order.created", {"test": True})
    assert filtered["id"] not in [d["endpoint_id"] for d in answer.json()["deliveries"]]


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({"amount": {"$regex": "x"}}, "$regex"),
        ({"amount": {"$gte": [1]}}, "$gte"),
        ({"amount": {"$in": 5}}, "$in"),
        ({"$or": []}, "$or"),
        ({"a..b": 1}, "a..b"),
        ({"amount": {"$gt": 1, "plain": 2}}, "amount"),
    ],
)
def test_bad_filters_are_422_naming_operator_or_path(tenant, receiver, spec, says) -> None:
    response = tenant.client.post(
        f"/api/v1/tenants/{tenant.id}/endpoints", json={"url": receiver.url("/x"), "filter": spec}
    )
    error = assert_error(response, 422, "validation_error")
    assert says in error["message"], error
    endpoint = tenant.add_endpoint(receiver.url("/x"))
    patched = tenant.client.patch(
        f"/api/v1/tenants/{tenant.id}/endpoints/{endpoint['id']}", json={"filter": spec}
    )
    assert says in assert_error(patched, 422, "validation_error")["message"]


@pytest.mark.parametrize("spec", [[1, 2], "amount", 5])
def test_a_filter_is_an_object(tenant, receiver, spec) -> None:
    response = tenant.client.post(
        f"/api/v1/tenants/{tenant.id}/endpoints", json={"url": receiver.url("/x"), "filter": spec}
    )
    assert_error(response, 422, "validation_error")
