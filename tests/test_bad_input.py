"""Malformed requests get a 4xx JSON error that names the problem, never a 500, and
never change what was already accepted."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.api_errors import assert_error, field_names
from tests.conftest import TenantCtx, create_tenant

EVENTS = "/api/v1/events"
JSON = {"content-type": "application/json"}
MAX_ID = 2**63 - 1
GOOD = {"event_id": "evt_good", "event_type": "user.created", "payload": {"user": {"id": "u1"}}}


@pytest.fixture(scope="module")
def victim(server, admin) -> Iterator[TenantCtx]:
    """One tenant receives every malformed publish of this module; it published one good
    event first, which ``test_accepted_events_are_unchanged`` (last) checks is untouched."""
    ctx = create_tenant(server, admin)
    response = ctx.client.post(EVENTS, json=GOOD)
    assert response.status_code == 202, response.text
    yield ctx
    ctx.client.close()


def nested(depth: int) -> dict:
    """A JSON object nesting ``depth`` levels (``{}`` is depth 1)."""
    value: dict = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def event(**overrides: object) -> dict:
    body = {"event_id": "evt_bad", "event_type": "user.created", "payload": {"k": "v"}}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


def raw(body: dict) -> bytes:
    return json.dumps(body).encode()


# (json body, expected field) for bodies that are valid JSON but not a valid event.
INVALID_EVENTS = {
    "missing-event_id": (event(event_id=...), "event_id"),
    "missing-event_type": (event(event_type=...), "event_type"),
    "missing-payload": (event(payload=...), "payload"),
    "payload-list": (event(payload=[1, 2]), "payload"),
    "payload-string": (event(payload="hello"), "payload"),
    "payload-number": (event(payload=3), "payload"),
    "payload-null": (event(payload=None), "payload"),
    "event_type-space": (event(event_type="user created"), "event_type"),
    "event_type-slash": (event(event_type="user/created"), "event_type"),
    "event_type-256": (event(event_type="a" * 256), "event_type"),
    "event_type-empty": (event(event_type=""), "event_type"),
    "event_type-number": (event(event_type=7), "event_type"),
    "event_id-empty": (event(event_id=""), "event_id"),
    "event_id-space": (event(event_id="evt 1"), "event_id"),
    "event_id-256": (event(event_id="e" * 256), "event_id"),
    "event_id-number": (event(event_id=12), "event_id"),
    "event_id-non-ascii": (event(event_id="évt"), "event_id"),
    "extra-field": (event(tenant_id=1), "tenant_id"),
    "depth-33": (event(payload=nested(33)), "payload"),
    "depth-33-in-lists": (event(payload={"a": json.loads("[" * 32 + "]" * 32)}), "payload"),
}


@pytest.mark.parametrize(("body", "field"), INVALID_EVENTS.values(), ids=INVALID_EVENTS.keys())
def test_invalid_event_is_422_naming_the_field(victim, body, field) -> None:
    error = assert_error(victim.client.post(EVENTS, json=body), 422, "validation_error")
    assert field in field_names(error)
    assert field in error["message"]
    for entry in error["fields"]:
        assert entry["location"] == "body"
        assert entry["message"]


# (raw bytes, headers, expected status, expected code, text the message must contain)
MALFORMED_BODIES = {
    "not-json": (b"{not json", JSON, 422, "validation_error", "JSON"),
    "truncated": (raw(GOOD)[:-5], JSON, 422, "validation_error", "JSON"),
    "empty": (b"", JSON, 422, "validation_error", "body"),
    "top-level-list": (b"[]", JSON, 422, "validation_error", "body"),
    "top-level-null": (b"null", JSON, 422, "validation_error", "body"),
    "invalid-utf8": (
        b'{"event_id": "evt_\xff\xfe", "event_type": "a", "payload": {}}',
        JSON,
        422,
        "validation_error",
        "JSON",
    ),
    "lone-surrogate": (
        b'{"event_id": "e", "event_type": "a", "payload": {"s": "\\ud800"}}',
        JSON,
        422,
        "validation_error",
        "JSON",
    ),
    "nan": (
        b'{"event_id": "e", "event_type": "a", "payload": {"v": NaN}}',
        JSON,
        422,
        "validation_error",
        "JSON",
    ),
    "infinity": (
        b'{"event_id": "e", "event_type": "a", "payload": {"v": Infinity}}',
        JSON,
        422,
        "validation_error",
        "JSON",
    ),
    "minus-infinity": (
        b'{"event_id": "e", "event_type": "a", "payload": {"v": -Infinity}}',
        JSON,
        422,
        "validation_error",
        "JSON",
    ),
    "text-plain": (
        raw(event()),
        {"content-type": "text/plain"},
        415,
        "unsupported_media_type",
        "application/json",
    ),
    "form": (
        b"event_id=e&event_type=a",
        {"content-type": "application/x-www-form-urlencoded"},
        415,
        "unsupported_media_type",
        "application/json",
    ),
}


@pytest.mark.parametrize(
    ("content", "headers", "status", "code", "mentions"),
    MALFORMED_BODIES.values(),
    ids=MALFORMED_BODIES.keys(),
)
def test_malformed_body_is_a_json_4xx(victim, content, headers, status, code, mentions) -> None:
    response = victim.client.post(EVENTS, content=content, headers=headers)
    error = assert_error(response, status, code)
    assert mentions in error["message"]
    assert field_names(error)


@pytest.mark.parametrize("depth", [2000, 100_000])
@pytest.mark.parametrize("kind", ["objects", "arrays"])
def test_absurd_nesting_is_a_4xx(victim, depth, kind) -> None:
    opening, closing = (b'{"a":', b"}") if kind == "objects" else (b"[", b"]")
    inner = opening * depth + (b"{}" if kind == "objects" else b"") + closing * depth
    body = b'{"event_id": "evt_deep", "event_type": "a", "payload": {"deep": ' + inner + b"}}"
    response = victim.client.post(EVENTS, content=body, headers=JSON)
    if len(body) > 256 * 1024:
        assert_error(response, 413, "payload_too_large")
    else:
        error = assert_error(response, 422, "validation_error")
        assert "JSON" in error["message"] or "payload" in field_names(error)


def test_payload_at_the_depth_limit_is_accepted(tenant) -> None:
    payload = nested(32)
    response = tenant.client.post(
        EVENTS, json={"event_id": "evt_depth_32", "event_type": "a", "payload": payload}
    )
    assert response.status_code == 202, response.text
    assert tenant.client.get(f"{EVENTS}/evt_depth_32").json()["payload"] == payload


def oversized() -> bytes:
    return raw(event(event_id="evt_big", payload={"blob": "x" * (256 * 1024)}))


def test_body_over_256_kb_is_413_json(victim) -> None:
    # Regression: with a Content-Length over the limit the answer used to be a text/plain 413.
    response = victim.client.post(EVENTS, content=oversized(), headers=JSON)
    error = assert_error(response, 413, "payload_too_large")
    assert "262144" in error["message"]


def test_chunked_body_over_256_kb_is_413_json(victim) -> None:
    body = oversized()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 16 * 1024):
            yield body[start : start + 16 * 1024]

    response = victim.client.post(EVENTS, content=chunks(), headers=JSON)
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "payload_too_large")


def test_body_just_under_the_limit_is_accepted(tenant) -> None:
    envelope = raw(event(event_id="evt_almost", payload={"blob": ""}))
    blob = "x" * (256 * 1024 - len(envelope))
    content = raw(event(event_id="evt_almost", payload={"blob": blob}))
    assert len(content) == 256 * 1024
    response = tenant.client.post(EVENTS, content=content, headers=JSON)
    assert response.status_code == 202, response.text


def test_oversized_bodies_are_refused_on_every_route(admin) -> None:
    body = json.dumps({"name": "x" * (300 * 1024), "email": "a@example.com"})
    response = admin.post("/api/v1/tenants", content=body, headers=JSON)
    assert_error(response, 413, "payload_too_large")


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing X-API-Key header"),
        ({"X-API-Key": "whk_wrong"}, "invalid API key"),
        ({"X-API-Key": ""}, "missing X-API-Key header"),
    ],
    ids=["missing", "wrong", "empty"],
)
def test_publish_without_a_valid_key_is_401(server, headers, message) -> None:
    with server.client(**headers) as client:
        response = client.post(EVENTS, json=event(event_id="evt_anonymous"))
    error = assert_error(response, 401, "unauthorized")
    assert error["message"] == message


def test_the_admin_key_publishes_only_for_a_named_tenant(admin) -> None:
    error = assert_error(
        admin.post(EVENTS, json=event(event_id="evt_admin")), 422, "validation_error"
    )
    assert field_names(error) == ["tenant_id"]


def test_unknown_route_is_404_json(victim) -> None:
    for response in (
        victim.client.get("/api/v1/nothing-here"),
        victim.client.post("/api/v2/events", json=GOOD),
        victim.client.get("/"),
    ):
        assert_error(response, 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", EVENTS),
        ("DELETE", EVENTS),
        ("PATCH", f"{EVENTS}/evt_good"),
        ("POST", f"{EVENTS}/evt_good"),
        ("DELETE", "/api/v1/tenants"),
        ("POST", "/health"),
    ],
)
def test_wrong_method_is_405_json(victim, method, path) -> None:
    response = victim.client.request(method, path, json=GOOD)
    assert_error(response, 405, "method_not_allowed")
    assert response.headers.get("allow")


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/tenants?cursor={big}", "cursor"),
        ("/api/v1/tenants/{own}/endpoints?cursor={big}", "cursor"),
        ("/api/v1/events?cursor={big}", "cursor"),
        ("/api/v1/dlq?cursor={big}", "cursor"),
        ("/api/v1/deliveries?cursor={big}", "cursor"),
        ("/api/v1/events?limit=0", "limit"),
        ("/api/v1/deliveries?status=failed", "status.0"),
        ("/api/v1/deliveries?since=yesterday", "since"),
    ],
)
def test_bad_queries_are_422_naming_the_parameter(admin, victim, path, field) -> None:
    # Regression: ids past 2**63 - 1 used to reach SQLite and raise OverflowError (500);
    # cursors are opaque now, and anything but one given out is a 422.
    url = path.format(big=MAX_ID + 1, own=victim.id)
    client = admin if url.startswith("/api/v1/tenants") else victim.client
    error = assert_error(client.get(url), 422, "validation_error")
    assert field_names(error) == [field]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/tenants/{max}",
        "/api/v1/tenants/{big}",
        "/api/v1/tenants/-1",
        "/api/v1/tenants/abc",
        "/api/v1/tenants/{max}/endpoints",
        "/api/v1/tenants/{own}/endpoints/{max}",
        "/api/v1/tenants/{own}/endpoints/{big}",
        "/api/v1/dlq/{max}",
        "/api/v1/dlq/{big}",
    ],
)
def test_ids_that_name_nothing_are_a_plain_404(admin, victim, path) -> None:
    # Row ids (any integer) name nothing: public ids do (tnt_…, ep_…, dlq_…).
    url = path.format(max=MAX_ID, big=MAX_ID + 1, own=victim.id)
    client = admin if url.startswith("/api/v1/tenants") else victim.client
    assert_error(client.get(url), 404, "not_found")


def test_huge_id_in_a_body_is_422(victim) -> None:
    response = victim.client.post("/api/v1/dlq/retry", json={"endpoint_id": MAX_ID + 1})
    error = assert_error(response, 422, "validation_error")
    assert field_names(error) == ["endpoint_id"]


def test_errors_are_not_500_for_a_burst_of_garbage(victim) -> None:
    """A quick sweep of odd bodies: whatever they are, the answer is a JSON 4xx."""
    bodies = [b"\x00", b"{", b"}", b'"string"', b"1e999999", b'{"event_id": }', b"\xef\xbb\xbf{}"]
    for body in bodies:
        response = victim.client.post(EVENTS, content=body, headers=JSON)
        assert 400 <= response.status_code < 500, (body, response.status_code, response.text)
        assert set(response.json()) == {"error"}


def test_accepted_events_are_unchanged(victim) -> None:
    """Runs last: nothing above changed the good event or stored a bad one."""
    response = victim.client.get(f"{EVENTS}/{GOOD['event_id']}")
    assert response.status_code == 200, response.text
    stored = response.json()
    assert stored["event_type"] == GOOD["event_type"]
    assert stored["payload"] == GOOD["payload"]
    listed = victim.client.get(EVENTS, params={"limit": 100})
    assert [e["event_id"] for e in listed.json()["items"]] == [GOOD["event_id"]]
    again = victim.client.post(EVENTS, json=GOOD)
    assert again.status_code == 200, again.text
    assert again.json()["duplicate"] is True
    assert again.json()["id"] == stored["id"]
