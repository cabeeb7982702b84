"""Endpoints API: CRUD with the tenant's key and the admin key, isolation, validation."""

from __future__ import annotations

import httpx
import pytest

from tests.api_errors import assert_error, field_names

ENDPOINT_FIELDS = {
    "id",
    "tenant_id",
    "url",
    "event_types",
    "is_active",
    "description",
    # the delivery policy (docs/DELIVERY.md)
    "retry_schedule",
    "rate_limit",
    "headers",
    "ordering",
    "filter",
    "disabled_reason",
    "circuit",
    "failing_since",
    # issue 17: the adopter's id, labels, channels (the Svix API's fields)
    "uid",
    "metadata",
    "channels",
    "created_at",
    "updated_at",
}


def base(tenant_id: int) -> str:
    return f"/api/v1/tenants/{tenant_id}/endpoints"


def list_ids(client: httpx.Client, tenant_id: int) -> list[int]:
    response = client.get(base(tenant_id), params={"limit": 100})
    assert response.status_code == 200, response.text
    return [e["id"] for e in response.json()["items"]]


@pytest.fixture(params=["tenant-key", "admin-key"])
def caller(request, admin, tenant) -> httpx.Client:
    return tenant.client if request.param == "tenant-key" else admin


def test_crud(caller, tenant, receiver) -> None:
    url = receiver.url("/crud")
    created = caller.post(
        base(tenant.id),
        json={
            "url": url,
            "event_types": ["user.created", "order.completed", "user.created"],
            "description": "primary",
        },
    )
    assert created.status_code == 201, created.text
    endpoint = created.json()
    assert set(endpoint) == ENDPOINT_FIELDS
    assert endpoint["tenant_id"] == tenant.id
    assert endpoint["url"] == url
    assert endpoint["event_types"] == ["user.created", "order.completed"]  # deduplicated
    assert endpoint["is_active"] is True
    assert endpoint["description"] == "primary"
    path = f"{base(tenant.id)}/{endpoint['id']}"

    listed = caller.get(base(tenant.id))
    assert listed.status_code == 200, listed.text
    assert listed.json() == {"items": [endpoint], "next_cursor": None}

    got = caller.get(path)
    assert got.status_code == 200, got.text
    assert got.json() == endpoint

    patched = caller.patch(path, json={"event_types": [], "is_active": False})
    assert patched.status_code == 200, patched.text
    changed = patched.json()
    assert changed == {
        **endpoint,
        "event_types": [],
        "is_active": False,
        "updated_at": changed["updated_at"],
    }
    assert changed["updated_at"] >= endpoint["updated_at"]
    assert caller.get(path).json() == changed

    new_url = receiver.url("/crud-moved")
    patched = caller.patch(path, json={"url": new_url, "description": None})
    assert patched.status_code == 200, patched.text
    assert patched.json()["url"] == new_url
    assert patched.json()["description"] is None
    assert patched.json()["is_active"] is False  # untouched fields keep their values

    deleted = caller.delete(path)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_error(caller.get(path), 404, "not_found")
    assert_error(caller.patch(path, json={"is_active": True}), 404, "not_found")
    assert_error(caller.delete(path), 404, "not_found")
    assert list_ids(caller, tenant.id) == []


def test_tenant_and_admin_see_the_same_endpoint(admin, tenant, receiver) -> None:
    endpoint = tenant.add_endpoint(receiver.url("/same"))
    path = f"{base(tenant.id)}/{endpoint['id']}"
    assert admin.get(path).json() == tenant.client.get(path).json() == endpoint
    by_admin = admin.post(base(tenant.id), json={"url": receiver.url("/by-admin")}).json()
    assert by_admin["tenant_id"] == tenant.id
    assert list_ids(tenant.client, tenant.id) == [endpoint["id"], by_admin["id"]]


def test_list_pages(tenant, receiver) -> None:
    ids = [tenant.add_endpoint(receiver.url(f"/page-{i}"))["id"] for i in range(5)]
    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor is not None else {})
        page = tenant.client.get(base(tenant.id), params=params).json()
        seen += [e["id"] for e in page["items"]]
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
        assert len(seen) <= 10
    assert seen == ids


def test_another_tenants_key_gets_404_on_every_route(admin, tenant, other_tenant, receiver):
    mine = tenant.add_endpoint(receiver.url("/mine"), event_types=["user.created"])
    theirs = other_tenant.add_endpoint(receiver.url("/theirs"))
    snapshot_mine = admin.get(f"{base(tenant.id)}/{mine['id']}").json()
    snapshot_theirs = admin.get(f"{base(other_tenant.id)}/{theirs['id']}").json()
    intruder = other_tenant.client

    # Another tenant's id in the path.
    responses = {
        "create": intruder.post(base(tenant.id), json={"url": receiver.url("/planted")}),
        "list": intruder.get(base(tenant.id)),
        "get": intruder.get(f"{base(tenant.id)}/{mine['id']}"),
        "patch": intruder.patch(
            f"{base(tenant.id)}/{mine['id']}", json={"url": receiver.url("/stolen")}
        ),
        "delete": intruder.delete(f"{base(tenant.id)}/{mine['id']}"),
        # Its own tenant id, but another tenant's endpoint id.
        "get-own-path": intruder.get(f"{base(other_tenant.id)}/{mine['id']}"),
        "patch-own-path": intruder.patch(
            f"{base(other_tenant.id)}/{mine['id']}", json={"is_active": False}
        ),
        "delete-own-path": intruder.delete(f"{base(other_tenant.id)}/{mine['id']}"),
    }
    for name, response in responses.items():
        error = assert_error(response, 404, "not_found")
        assert receiver.url("/mine") not in response.text, name
        assert error["message"].startswith(("tenant ", "endpoint ")), name

    # Nothing changed on either side.
    assert admin.get(f"{base(tenant.id)}/{mine['id']}").json() == snapshot_mine
    assert admin.get(f"{base(other_tenant.id)}/{theirs['id']}").json() == snapshot_theirs
    assert list_ids(admin, tenant.id) == [mine["id"]]
    assert list_ids(admin, other_tenant.id) == [theirs["id"]]


def test_admin_on_an_unknown_tenant_gets_404(admin, receiver) -> None:
    # Regression: creating used to hit the foreign key and answer 500; listing answered 200.
    response = admin.post(base(987654321), json={"url": receiver.url("/orphan")})
    assert_error(response, 404, "not_found")
    assert_error(admin.get(base(987654321)), 404, "not_found")
    assert_error(admin.get(f"{base(987654321)}/1"), 404, "not_found")


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-API-Key": "whk_wrong"}, {"X-Admin-Key": "whadm_wrong"}],
    ids=["none", "wrong-api-key", "wrong-admin-key"],
)
def test_routes_require_a_valid_key(server, tenant, receiver, headers) -> None:
    endpoint = tenant.add_endpoint(receiver.url("/auth"))
    path = f"{base(tenant.id)}/{endpoint['id']}"
    with server.client(**headers) as client:
        for response in (
            client.post(base(tenant.id), json={"url": receiver.url("/x")}),
            client.get(base(tenant.id)),
            client.get(path),
            client.patch(path, json={"is_active": False}),
            client.delete(path),
        ):
            assert_error(response, 401, "unauthorized")
    assert tenant.client.get(path).json() == endpoint


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "javascript:alert(1)",
        "file:///etc/passwd",
        "http://",
        "https:///no-host",
        "example.com/hook",
        "",
        "http://exa mple.com/hook",
        "https://example.com/" + "a" * 2048,
    ],
    ids=[
        "ftp",
        "javascript",
        "file",
        "no-host",
        "empty-host",
        "no-scheme",
        "empty",
        "space-in-host",
        "too-long",
    ],
)
def test_url_must_be_http_or_https(tenant, receiver, url) -> None:
    response = tenant.client.post(base(tenant.id), json={"url": url})
    error = assert_error(response, 422, "validation_error")
    assert field_names(error) == ["url"]
    assert list_ids(tenant.client, tenant.id) == []

    endpoint = tenant.add_endpoint(receiver.url("/valid"))
    path = f"{base(tenant.id)}/{endpoint['id']}"
    error = assert_error(tenant.client.patch(path, json={"url": url}), 422, "validation_error")
    assert field_names(error) == ["url"]
    assert tenant.client.get(path).json() == endpoint


@pytest.mark.parametrize("url", ["http://example.com/hook", "https://example.com:8443/a?b=c"])
def test_http_and_https_urls_are_accepted(tenant, url) -> None:
    assert tenant.add_endpoint(url)["url"] == url


@pytest.mark.parametrize(
    "event_types",
    [
        ["user created"],
        ["a/b"],
        ["ok.type", "bad type"],
        [""],
        ["x" * 256],
        ["user.created\n"],
        "user.created",
        [1],
        [f"t{i}" for i in range(101)],
    ],
    ids=[
        "space",
        "slash",
        "second-bad",
        "empty",
        "too-long",
        "newline",
        "not-a-list",
        "not-strings",
        "too-many",
    ],
)
def test_event_types_are_validated(tenant, receiver, event_types) -> None:
    body = {"url": receiver.url("/types"), "event_types": event_types}
    error = assert_error(tenant.client.post(base(tenant.id), json=body), 422, "validation_error")
    assert all(name.startswith("event_types") for name in field_names(error))
    assert list_ids(tenant.client, tenant.id) == []

    endpoint = tenant.add_endpoint(receiver.url("/types-ok"), event_types=["user.created"])
    path = f"{base(tenant.id)}/{endpoint['id']}"
    response = tenant.client.patch(path, json={"event_types": event_types})
    error = assert_error(response, 422, "validation_error")
    assert all(name.startswith("event_types") for name in field_names(error))
    assert tenant.client.get(path).json() == endpoint


@pytest.mark.parametrize("field", ["url", "event_types", "is_active"])
def test_patch_with_null_for_a_required_field_is_422(tenant, receiver, field) -> None:
    endpoint = tenant.add_endpoint(receiver.url("/nulls"), event_types=["a.b"])
    path = f"{base(tenant.id)}/{endpoint['id']}"
    error = assert_error(tenant.client.patch(path, json={field: None}), 422, "validation_error")
    assert field_names(error) == [field]
    assert tenant.client.get(path).json() == endpoint


@pytest.mark.parametrize(
    "body",
    [{"tenant_id": 1}, {"id": 5}, {"secret": "x"}, {"is_active": "maybe"}],
    ids=["tenant_id", "id", "unknown", "bad-bool"],
)
def test_patch_rejects_unknown_or_mistyped_fields(tenant, receiver, body) -> None:
    endpoint = tenant.add_endpoint(receiver.url("/extra"))
    path = f"{base(tenant.id)}/{endpoint['id']}"
    error = assert_error(tenant.client.patch(path, json=body), 422, "validation_error")
    assert field_names(error) == list(body)
    assert tenant.client.get(path).json() == endpoint


def test_create_cannot_pick_another_tenant_through_the_body(tenant, other_tenant, receiver):
    response = tenant.client.post(
        base(tenant.id), json={"url": receiver.url("/body"), "tenant_id": other_tenant.id}
    )
    error = assert_error(response, 422, "validation_error")
    assert field_names(error) == ["tenant_id"]
    assert list_ids(other_tenant.client, other_tenant.id) == []


def test_deleting_one_endpoint_leaves_the_others(tenant, other_tenant, receiver) -> None:
    first, second, third = (
        tenant.add_endpoint(receiver.url(f"/keep-{i}"), event_types=["user.created"])
        for i in range(3)
    )
    neighbour = other_tenant.add_endpoint(receiver.url("/neighbour"))

    response = tenant.client.delete(f"{base(tenant.id)}/{second['id']}")
    assert response.status_code == 204, response.text

    assert list_ids(tenant.client, tenant.id) == [first["id"], third["id"]]
    for endpoint in (first, third):
        assert tenant.client.get(f"{base(tenant.id)}/{endpoint['id']}").json() == endpoint
    assert other_tenant.client.get(f"{base(other_tenant.id)}/{neighbour['id']}").json() == (
        neighbour
    )
    assert_error(tenant.client.get(f"{base(tenant.id)}/{second['id']}"), 404, "not_found")

    # Routing follows: a new event goes to the two survivors only.
    published = tenant.publish("user.created")
    assert published.status_code == 202, published.text
    assert sorted(d["endpoint_id"] for d in published.json()["deliveries"]) == [
        first["id"],
        third["id"],
    ]
