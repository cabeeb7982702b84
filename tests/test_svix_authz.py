"""Who may call what on the Svix-compatible API (tests/test_authz_matrix.py leaves it out):
every Svix route x every kind of caller, with bearer tokens, against real objects.

* ``none`` (no Authorization), ``wrong`` (``Bearer whk_<garbage>``), ``wrong-admin``
  (``Bearer <garbage>``): 401 ``authentication_failed`` everywhere but the health check;
* ``other``: another tenant's key: 404 for ``own``'s application and what is in it, exactly
  as for an application that does not exist, and none of ``own``'s data in any answer;
* ``own``: ``own``'s key: 2xx in its application, 403 ``forbidden`` on what only the
  operator does (creating, changing, deleting applications);
* ``admin``: the admin key: 2xx everywhere.

Every answer that is not 2xx is Svix's ``{code, detail}``.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from tests.conftest import TenantCtx, create_tenant
from tests.fixtures.receiver import Receiver
from tests.fixtures.server import ADMIN_KEY, LiveServer, make_settings
from webhookd.app import create_app
from webhookd.svix import routers as svix_routers

PUBLIC, APP, ADMIN, CATALOG, ANY = "public", "app", "admin-only", "catalog", "any"
CALLERS = ("none", "wrong", "wrong-admin", "other", "own", "admin")
MISSING_APP = "tnt_01JEKX6V4W8S8N0C7W0R6FQ2ZB"
_seq = itertools.count(1)


@dataclass
class World:
    server: LiveServer
    receiver: Receiver
    own: TenantCtx
    other: TenantCtx
    endpoint_id: str = ""
    msg_id: str = ""
    event_type: str = ""
    task_id: str = ""

    def client(self, caller: str) -> httpx.Client:
        token = {
            "none": None,
            "wrong": "whk_" + uuid.uuid4().hex,
            "wrong-admin": uuid.uuid4().hex,
            "other": self.other.api_key,
            "own": self.own.api_key,
            "admin": ADMIN_KEY,
        }[caller]
        return self.server.client(**({"Authorization": f"Bearer {token}"} if token else {}))

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        with self.client("admin") as client:
            response = client.request(method, path, json=body)
        assert response.status_code < 300, response.text
        return response.json()

    def new_endpoint(self) -> str:
        url = self.receiver.url("/svix-authz")
        return str(self.admin("POST", f"/api/v1/app/{self.own.id}/endpoint", {"url": url})["id"])

    def new_event_type(self) -> str:
        """A type in both catalogs a caller may see: own's (its key) and the deployment's
        (the admin key's)."""
        name = f"authz.svix.{next(_seq)}"
        for caller in ("own", "admin"):
            with self.client(caller) as client:
                body = {"name": name, "description": "d"}
                assert client.post("/api/v1/event-type", json=body).status_code == 201
        return name

    def new_app(self) -> str:
        return str(self.admin("POST", "/api/v1/app", {"name": "doomed"})["id"])


@pytest.fixture(scope="module")
def world(server: LiveServer, receiver: Receiver, admin: httpx.Client) -> World:
    world = World(server, receiver, create_tenant(server, admin), create_tenant(server, admin))
    world.endpoint_id = world.new_endpoint()
    message = {"eventType": "user.created", "eventId": "authz-msg", "payload": {"n": 1}}
    world.msg_id = world.admin("POST", f"/api/v1/app/{world.own.id}/msg", message)["id"]
    world.event_type = world.new_event_type()
    recover = {"since": "2026-01-01T00:00:00Z"}
    path = f"/api/v1/app/{world.own.id}/endpoint/{world.endpoint_id}/recover"
    world.task_id = world.admin("POST", path, recover)["id"]
    return world


Body = dict[str, Any] | Callable[[World], dict[str, Any]] | None


@dataclass(frozen=True)
class Row:
    access: str
    body: Body = None
    fresh: str | None = None  # "app", "endpoint", "event_type": a new one per request


A = "/api/v1/app/{app_id}"
EP = A + "/endpoint/{endpoint_id}"
ET = "/api/v1/event-type/{event_type_name}"
MATRIX: dict[tuple[str, str], Row] = {
    ("POST", "/api/v1/app"): Row(ADMIN, {"name": "new"}),
    ("GET", "/api/v1/app"): Row(ANY),
    ("GET", A): Row(APP),
    ("PUT", A): Row(ADMIN, {"name": "renamed"}),
    ("PATCH", A): Row(ADMIN, {"name": "patched"}),
    ("DELETE", A): Row(ADMIN, fresh="app"),
    ("POST", A + "/endpoint"): Row(APP, lambda w: {"url": w.receiver.url("/svix-authz")}),
    ("GET", A + "/endpoint"): Row(APP),
    ("GET", EP): Row(APP),
    ("PUT", EP): Row(APP, lambda w: {"url": w.receiver.url("/svix-authz")}),
    ("PATCH", EP): Row(APP, {"description": "patched"}),
    ("DELETE", EP): Row(APP, fresh="endpoint"),
    ("GET", EP + "/secret"): Row(APP),
    ("POST", EP + "/secret/rotate"): Row(APP, {}),
    ("GET", EP + "/headers"): Row(APP),
    ("PUT", EP + "/headers"): Row(APP, {"headers": {"X-A": "1"}}),
    ("PATCH", EP + "/headers"): Row(APP, {"headers": {"X-B": "2"}}),
    ("POST", A + "/msg"): Row(APP, {"eventType": "user.created", "payload": {}}),
    ("GET", A + "/msg"): Row(APP),
    ("GET", A + "/msg/{msg_id}"): Row(APP),
    ("GET", A + "/attempt/msg/{msg_id}"): Row(APP),
    ("GET", A + "/attempt/endpoint/{endpoint_id}"): Row(APP),
    ("POST", A + "/msg/{msg_id}/endpoint/{endpoint_id}/resend"): Row(APP),
    ("POST", EP + "/recover"): Row(APP, {"since": "2026-01-01T00:00:00Z"}),
    # A recovery of own's application: own's key and the admin key see it, other's not.
    ("GET", "/api/v1/background-task/{task_id}"): Row(APP),
    ("POST", "/api/v1/auth/app-portal-access/{app_id}"): Row(APP, {}),
    ("POST", "/api/v1/event-type"): Row(
        ANY, lambda w: {"name": f"authz.new.{next(_seq)}", "description": "d"}
    ),
    ("GET", "/api/v1/event-type"): Row(ANY),
    ("GET", ET): Row(CATALOG),
    # An upsert: the type is created in the caller's own catalog if it has none of the name.
    ("PUT", ET): Row(ANY, {"description": "put"}),
    ("PATCH", ET): Row(CATALOG, {"description": "patched"}, fresh="event_type"),
    ("DELETE", ET): Row(CATALOG, fresh="event_type"),
    ("GET", "/api/v1/health"): Row(PUBLIC),
}


def test_matrix_covers_every_svix_route() -> None:
    app = create_app(make_settings("sqlite:///unused.db"))
    paths = {route.path for router in svix_routers for route in router.routes}
    routes = {
        (method, route.path)
        for route in iter_route_contexts(app.routes)
        for method in route.methods or ()
        if method != "HEAD" and route.path in paths
    }
    assert routes == set(MATRIX), (sorted(routes - set(MATRIX)), sorted(set(MATRIX) - routes))


def expected(access: str, caller: str) -> int:
    if access == PUBLIC:
        return 200
    if caller in ("none", "wrong", "wrong-admin"):
        return 401
    if caller == "admin" or access == ANY:
        return 200
    if access == ADMIN:
        return 403
    return 404 if caller == "other" else 200


def _url(world: World, row: Row, path: str, *, missing: bool = False) -> str:
    values = {
        "app_id": MISSING_APP if missing else world.own.id,
        "endpoint_id": world.endpoint_id,
        "msg_id": world.msg_id,
        "task_id": world.task_id,
        "event_type_name": "never.declared" if missing else world.event_type,
    }
    if row.fresh == "app":
        values["app_id"] = world.new_app()
    elif row.fresh == "endpoint":
        values["endpoint_id"] = world.new_endpoint()
    elif row.fresh == "event_type" and not missing:
        values["event_type_name"] = world.new_event_type()
    return path.format(**values)


def _send(world: World, caller: str, method: str, url: str, body: Body) -> httpx.Response:
    json = body(world) if callable(body) else body
    with world.client(caller) as client:
        return client.request(method, url, json=json)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(("method", "path"), list(MATRIX), ids=[f"{m} {p}" for m, p in MATRIX])
def test_caller_gets_the_right_answer(world: World, method: str, path: str, caller: str) -> None:
    row = MATRIX[(method, path)]
    url = _url(world, row, path)
    response = _send(world, caller, method, url, row.body)
    want = expected(row.access, caller)
    if want == 200:
        assert 200 <= response.status_code < 300, (response.status_code, response.text)
    else:
        assert response.status_code == want, response.text
        code = {401: "authentication_failed", 403: "forbidden", 404: "not_found"}[want]
        assert response.json()["code"] == code and response.json()["detail"], response.text
    if want == 404:  # exactly as for what does not exist
        missing = _send(world, caller, method, _url(world, row, path, missing=True), row.body)
        assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    if caller == "other":  # nothing of own's, but what the request named itself
        for secret in (world.own.id, world.own.api_key, world.endpoint_id, world.msg_id):
            assert secret in url or secret not in response.text, response.text
