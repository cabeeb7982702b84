"""The publish fast path (event/ingest.py) answers exactly like the FastAPI route: the same
requests against a server whose key cache is off (every publish goes through the route) and
one whose cache is warm (well-formed publishes take the fast path)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.conftest import create_tenant
from tests.fixtures.db import TestDatabase
from tests.fixtures.server import ADMIN_KEY, LiveServer, make_settings

EVENTS = "/api/v1/events"
GOOD = b'{"event_id": "evt_1", "event_type": "user.created", "payload": {"a": [1, {"b": null}]}}'
JSON = {"content-type": "application/json"}

# name: (headers, body); sent in this order, each once.
REQUESTS: dict[str, tuple[dict[str, str], bytes]] = {
    "new": (JSON, GOOD),
    "duplicate": (JSON, GOOD),
    "json-suffix-type": (
        {"content-type": "application/cloudevents+json"},
        GOOD.replace(b"_1", b"_2"),
    ),
    "no-content-type": ({}, GOOD.replace(b"_1", b"_3")),
    "text-plain": ({"content-type": "text/plain"}, GOOD),
    "not-json": (JSON, b"{nope"),
    "nan": (JSON, b'{"event_id": "e", "event_type": "t", "payload": {"x": NaN}}'),
    "extra-field": (JSON, GOOD[:-1] + b', "x": 1}'),
    "bad-type": (JSON, GOOD.replace(b"user.created", b"user created")),
    "too-deep": (
        JSON,
        b'{"event_id": "d", "event_type": "t", "payload": ' + b'{"a":' * 40 + b"1" + b"}" * 41,
    ),
    "list-body": (JSON, b"[1, 2]"),
    "wrong-key": ({**JSON, "X-API-Key": "whk_wrong"}, GOOD),
    "no-key": ({**JSON, "X-API-Key": ""}, GOOD),
    "too-large": (
        JSON,
        b'{"event_id": "big", "event_type": "t", "payload": {"x": "' + b"x" * 300_000 + b'"}}',
    ),
    "rate-limited": (JSON, GOOD.replace(b"_1", b"_4")),
}
VOLATILE = ("id", "created_at", "deliveries")


def _answers(server: LiveServer) -> dict[str, tuple[int, object, str | None]]:
    with server.client(**{"X-Admin-Key": ADMIN_KEY}) as admin:
        tenant = create_tenant(server, admin, rate_limit=3)
    tenant.add_endpoint("http://127.0.0.1:9/hook")
    tenant.client.get(EVENTS)  # authenticates the key: cached where the cache is on
    answers = {}
    for name, (headers, body) in REQUESTS.items():
        response = tenant.client.post(EVENTS, content=body, headers=headers)
        try:
            parsed = response.json()
        except ValueError:
            parsed = response.text
        if isinstance(parsed, dict) and "error" not in parsed:
            parsed = {k: v for k, v in parsed.items() if k not in VOLATILE}
        answers[name] = (
            response.status_code,
            parsed,
            response.headers.get("X-RateLimit-Remaining"),
        )
    tenant.client.close()
    return answers


@pytest.fixture(scope="module")
def databases(tmp_path_factory, backend: str) -> Iterator[tuple[str, str]]:
    first = TestDatabase(backend, tmp_path_factory.mktemp("route"))
    second = TestDatabase(backend, tmp_path_factory.mktemp("fast"))
    yield first.url, second.url
    first.drop()
    second.drop()


def test_fast_path_and_route_answer_alike(databases) -> None:
    results = []
    for url, cache_seconds in zip(databases, (0, 60), strict=True):
        server = LiveServer(
            make_settings(url, api_key_cache_seconds=cache_seconds, run_workers=False)
        ).start()
        try:
            results.append(_answers(server))
        finally:
            server.stop()
    route, fast = results
    assert fast == route
    assert route["new"][0] == 202 and route["duplicate"][0] == 200
    assert [route[n][0] for n in ("text-plain", "not-json", "wrong-key", "too-large")] == [
        415,
        422,
        401,
        413,
    ]
    assert route["rate-limited"][0] == 429


def test_a_client_that_leaves_mid_body_does_not_break_the_server(databases) -> None:
    server = LiveServer(make_settings(databases[0], api_key_cache_seconds=60)).start()
    try:
        with server.client(**{"X-Admin-Key": ADMIN_KEY}) as admin:
            tenant = create_tenant(server, admin)
        tenant.client.get(EVENTS)
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(  # 500 bytes announced, 14 sent, then the connection is closed
                f"POST {EVENTS} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"X-API-Key: {tenant.api_key}\r\nContent-Length: 500\r\n\r\n".encode()
                + b'{"event_id": '
            )
        assert tenant.publish("user.created").status_code == 202
        tenant.client.close()
    finally:
        server.stop()
