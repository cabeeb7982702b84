"""Who may call what: every route of the app x every kind of caller, against real objects.

Two tenants, ``own`` and ``other``, each have endpoints, events and dead-lettered deliveries
(``max_attempts=1`` and a receiver path that answers 500). Every request targets ``own``'s
objects and is sent as each caller:

* ``none``: no key; ``wrong``: ``X-API-Key: whk_<garbage>``; ``wrong-admin``:
  ``X-Admin-Key: whadm_<garbage>``: 401 everywhere but the public routes;
* ``other``: the other tenant's key: 404 for ``own``'s ids, exactly as for ids that do
  not exist (never 403, nothing that tells them apart), and no ``own`` data in any answer;
* ``own``: ``own``'s key: 2xx on tenant routes, 401 on admin routes;
* ``admin``: the admin key: 2xx on admin and tenant-or-admin routes, 401 on the tenant-only
  routes (events, DLQ: the admin key is not a tenant).

``MATRIX`` must name every route the app has: ``test_matrix_covers_every_route`` fails on
a route added without a row here, or a row whose route is gone. The Svix-compatible API
(bearer tokens, Svix's error shape) is left out here and has its own matrix:
tests/test_svix_authz.py.
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from tests.api_errors import assert_error
from tests.fixtures.delivery import wait_until
from tests.fixtures.receiver import Receiver
from tests.fixtures.server import ADMIN_KEY, LiveServer, make_settings, running_server
from webhookd.app import create_app
from webhookd.svix import routers as svix_routers

PUBLIC = "public"
ADMIN = "admin-only"
TENANT_OR_ADMIN = "tenant-or-admin"
TENANT = "tenant-only"

CALLERS = ("none", "wrong", "wrong-admin", "other", "own", "admin")

# Ids that never exist, for the requests ``other``'s answers are compared with.
MISSING = {
    "tenant_id": "tnt_01JEKX6V4W8S8N0C7W0R6FQ2ZB",
    "endpoint_id": "ep_01JEKX6V4W8S8N0C7W0R6FQ2ZB",
    "entry_id": "dlq_01JEKX6V4W8S8N0C7W0R6FQ2ZB",
    "event_id": "evt_authz_never_published",
    "name": "authz.never.declared",
    "job_id": "job_01JEKX6V4W8S8N0C7W0R6FQ2ZB",
    "delivery_id": "dlv_01JEKX6V4W8S8N0C7W0R6FQ2ZB",
}
DEAD_PATH = "/authz/dead"  # the receiver answers 500 here: one attempt, then the DLQ

_seq = itertools.count(1)


@dataclass
class Party:
    """A tenant and its objects; ``token`` is in every string it owns, to spot leaks."""

    token: str
    id: str = ""
    key: str = ""
    secret: str = ""
    endpoint_id: str = ""
    bulk_endpoint_id: str = ""  # its dead letters are the ones POST /dlq/retry retries
    event_id: str = ""
    event_type: str = ""  # in the tenant's event-type catalog
    entry_id: str = ""
    job_id: str = ""  # a recovery job of endpoint_id's (over a window with nothing in it)
    retry_entries: list[str] = field(default_factory=list)  # unresolved, one per retry
    endpoint_ids: set[str] = field(default_factory=set)
    delivery_ids: set[str] = field(default_factory=set)

    @property
    def name(self) -> str:
        return f"authz {self.token}"

    @property
    def email(self) -> str:
        return f"{self.token}@example.com"


@dataclass
class World:
    server: LiveServer
    receiver: Receiver
    admin: httpx.Client
    own: Party
    other: Party

    def client(self, caller: str) -> httpx.Client:
        headers = {
            "none": {},
            "wrong": {"X-API-Key": "whk_" + uuid.uuid4().hex},
            "wrong-admin": {"X-Admin-Key": "whadm_" + uuid.uuid4().hex},
            "other": {"X-API-Key": self.other.key},
            "own": {"X-API-Key": self.own.key},
            "admin": {"X-Admin-Key": ADMIN_KEY},
        }[caller]
        return self.server.client(**headers)

    def endpoint(self, party: Party, path: str) -> str:
        response = self.admin.post(
            f"/api/v1/tenants/{party.id}/endpoints",
            json={"url": self.receiver.url(f"{path}/{party.token}")},
        )
        assert response.status_code == 201, response.text
        party.endpoint_ids.add(response.json()["id"])
        return str(response.json()["id"])

    def event_type(self, party: Party) -> str:
        name = f"authz.{party.token}.{next(_seq)}"
        response = self.admin.post(f"/api/v1/tenants/{party.id}/event-types", json={"name": name})
        assert response.status_code == 201, response.text
        return name

    def publish(self, party: Party, client: httpx.Client, count: int) -> list[str]:
        event_ids = [f"evt_{party.token}_{next(_seq)}" for _ in range(count)]
        for event_id in event_ids:
            response = client.post(
                "/api/v1/events",
                json={"event_id": event_id, "event_type": "order.failed", "payload": {"n": 1}},
            )
            assert response.status_code == 202, response.text
            party.delivery_ids.update(d["id"] for d in response.json()["deliveries"])
        return event_ids


def _dead_letters(client: httpx.Client, event_ids: list[str]) -> dict[str, str]:
    """event_id -> dead-letter entry id, once every one of these events is dead-lettered."""

    def entries() -> dict[str, str] | None:
        response = client.get("/api/v1/dlq", params={"limit": 100})
        assert response.status_code == 200, response.text
        found = {e["event_id"]: e["id"] for e in response.json()["items"]}
        return found if set(event_ids) <= set(found) else None

    return wait_until(entries, what="dead letters")


# A recovery window in which nothing was dead-lettered: recovering it leaves the entries the
# DLQ routes act on unresolved.
EMPTY_WINDOW = {"since": "2000-01-01T00:00:00Z", "until": "2000-01-02T00:00:00Z"}


def _token(role: str) -> str:
    return f"{role}{uuid.uuid4().hex[:10]}"


def _setup(world: World, party: Party) -> None:
    response = world.admin.post(
        "/api/v1/tenants", json={"name": party.name, "email": party.email, "rate_limit": 10_000}
    )
    assert response.status_code == 201, response.text
    created = response.json()
    party.id, party.key, party.secret = created["id"], created["api_key"], created["secret_key"]
    party.endpoint_id = world.endpoint(party, DEAD_PATH)
    party.event_type = world.event_type(party)
    with world.server.client(**{"X-API-Key": party.key}) as client:
        # Single-entry DLQ routes act on these (all from endpoint_id).
        event_ids = world.publish(party, client, 1 + len(CALLERS))
        party.event_id = event_ids[0]
        entries = _dead_letters(client, event_ids)
        party.entry_id = entries[event_ids[0]]
        party.retry_entries = [entries[e] for e in event_ids[1:]]
        # Published after, so only these reach the second endpoint: POST /dlq/retry
        # filters on it and leaves the entries above unresolved.
        party.bulk_endpoint_id = world.endpoint(party, DEAD_PATH)
        _dead_letters(client, world.publish(party, client, 1))
    response = world.admin.post(
        f"/api/v1/tenants/{party.id}/endpoints/{party.endpoint_id}/recover", json=EMPTY_WINDOW
    )
    assert response.status_code == 202, response.text
    party.job_id = response.json()["id"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[LiveServer]:
    """One attempt per delivery: a delivery to the receiver's 500 path dies at once."""
    with running_server(tmp_path_factory, "authz", backend=backend, max_attempts=1) as srv:
        yield srv


@pytest.fixture(scope="module")
def world(server: LiveServer, receiver: Receiver, admin: httpx.Client) -> World:
    world = World(server, receiver, admin, Party(_token("own")), Party(_token("other")))
    for party in (world.own, world.other):
        receiver.plan(f"{DEAD_PATH}/{party.token}", default=500)
        _setup(world, party)
    return world


# -- the matrix ----------------------------------------------------------------------------

Body = dict[str, Any] | Callable[["World"], dict[str, Any]] | None


@dataclass(frozen=True)
class Row:
    access: str
    body: Body = None
    # Path ids taken fresh for each request (the request uses them up): "endpoint" for a
    # new endpoint of own's, "entry" for one of own's unresolved dead letters.
    fresh: str | None = None
    # The body names own's tenant (the operator's publish): other's key gets a 404.
    names_own: bool = False


def _new_event(world: World) -> dict[str, Any]:
    """A new event for own's tenant, named in the body (as the operator's key needs)."""
    return {
        "event_id": f"evt_authz_{next(_seq)}",
        "event_type": "user.created",
        "payload": {},
        "tenant_id": world.own.id,
    }


T = "/api/v1/tenants/{tenant_id}"
E = T + "/endpoints"
ET = T + "/event-types"
MATRIX: dict[tuple[str, str], Row] = {
    ("POST", "/api/v1/tenants"): Row(ADMIN, {"name": "authz new", "email": "new@example.com"}),
    ("GET", "/api/v1/tenants"): Row(ADMIN),
    ("GET", T): Row(TENANT_OR_ADMIN),
    ("PATCH", T): Row(ADMIN, {"rate_limit": 10_000}),
    ("POST", T + "/rotate-api-key"): Row(TENANT_OR_ADMIN),
    ("GET", T + "/secret"): Row(TENANT_OR_ADMIN),
    ("POST", T + "/rotate-secret"): Row(TENANT_OR_ADMIN, {"grace_period_seconds": 60}),
    ("POST", E): Row(TENANT_OR_ADMIN, lambda w: {"url": w.receiver.url("/authz/new")}),
    ("GET", E): Row(TENANT_OR_ADMIN),
    ("GET", E + "/{endpoint_id}"): Row(TENANT_OR_ADMIN),
    ("PATCH", E + "/{endpoint_id}"): Row(TENANT_OR_ADMIN, {"description": "patched"}),
    ("DELETE", E + "/{endpoint_id}"): Row(TENANT_OR_ADMIN, fresh="endpoint"),
    ("POST", E + "/{endpoint_id}/enable"): Row(TENANT_OR_ADMIN),
    ("POST", E + "/{endpoint_id}/test"): Row(TENANT_OR_ADMIN),
    ("POST", E + "/{endpoint_id}/recover"): Row(TENANT_OR_ADMIN, EMPTY_WINDOW),
    ("GET", E + "/{endpoint_id}/secret"): Row(TENANT_OR_ADMIN),
    ("POST", E + "/{endpoint_id}/rotate-secret"): Row(
        TENANT_OR_ADMIN, {"grace_period_seconds": 60}
    ),
    ("GET", "/api/v1/jobs/{job_id}"): Row(TENANT_OR_ADMIN),
    ("GET", "/api/v1/jobs"): Row(TENANT),
    ("POST", "/api/v1/portal-sessions"): Row(TENANT),
    ("POST", ET): Row(TENANT_OR_ADMIN, lambda w: {"name": f"authz.new.{next(_seq)}"}),
    ("GET", ET): Row(TENANT_OR_ADMIN),
    ("GET", ET + "/{name}"): Row(TENANT_OR_ADMIN),
    ("PATCH", ET + "/{name}"): Row(TENANT_OR_ADMIN, {"description": "patched"}),
    ("DELETE", ET + "/{name}"): Row(TENANT_OR_ADMIN, fresh="event_type"),
    ("POST", "/api/v1/events"): Row(TENANT_OR_ADMIN, _new_event, names_own=True),
    ("GET", "/api/v1/events"): Row(TENANT),
    ("GET", "/api/v1/events/{event_id}"): Row(TENANT),
    ("GET", "/api/v1/events/{event_id}/deliveries"): Row(TENANT),
    ("POST", "/api/v1/events/{event_id}/replay"): Row(TENANT),
    ("GET", "/api/v1/deliveries/{delivery_id}"): Row(TENANT),
    ("GET", "/api/v1/dlq"): Row(TENANT),
    ("POST", "/api/v1/dlq/retry"): Row(TENANT, lambda w: {"endpoint_id": w.own.bulk_endpoint_id}),
    ("GET", "/api/v1/deliveries"): Row(TENANT),
    ("GET", E + "/{endpoint_id}/deliveries"): Row(TENANT_OR_ADMIN),
    ("GET", "/api/v1/dlq/{entry_id}"): Row(TENANT),
    ("DELETE", "/api/v1/dlq/{entry_id}"): Row(TENANT),
    ("POST", "/api/v1/dlq/{entry_id}/retry"): Row(TENANT, fresh="entry"),
    ("GET", "/health"): Row(PUBLIC),
    ("GET", "/ready"): Row(PUBLIC),
    ("GET", "/metrics"): Row(PUBLIC),
    ("GET", "/openapi.json"): Row(PUBLIC),
    ("GET", "/docs"): Row(PUBLIC),
}


def expected(access: str, caller: str, has_ids: bool) -> str:
    """ "2xx", "401" or "404" for this caller on a route of this access class."""
    if access == PUBLIC:
        return "2xx"
    if caller in ("none", "wrong", "wrong-admin"):
        return "401"
    if caller == "admin":
        return "401" if access == TENANT else "2xx"
    if access == ADMIN:
        return "401"
    if caller == "own":
        return "2xx"
    return "404" if has_ids else "2xx"  # other: own's objects do not exist for it


# The Svix API's paths: tests/test_svix_authz.py (its own matrix).
SVIX_PATHS = frozenset(route.path for router in svix_routers for route in router.routes)


def app_routes() -> set[tuple[str, str]]:
    app = create_app(make_settings("sqlite:///unused.db"))
    routes = {
        (method, route.path)
        for route in iter_route_contexts(app.routes)
        for method in route.methods or ()
        # pages: tests/test_console_*.py, tests/test_portal.py (its own matrix)
        if method != "HEAD"
        and not route.path.startswith(("/ui", "/portal"))
        and route.path not in SVIX_PATHS
    }
    operations = {
        (m.upper(), p)
        for p, ops in app.openapi()["paths"].items()
        for m in ops
        if p not in SVIX_PATHS
    }
    assert operations <= routes, operations - routes
    return routes


def test_matrix_covers_every_route() -> None:
    routes = app_routes()
    missing = sorted(routes - set(MATRIX))
    stale = sorted(set(MATRIX) - routes)
    assert not missing, f"routes without a row in MATRIX (who may call them?): {missing}"
    assert not stale, f"MATRIX rows for routes the app does not have: {stale}"


HEADERS = {
    PUBLIC: set(),
    ADMIN: {"X-Admin-Key"},
    TENANT_OR_ADMIN: {"X-API-Key", "X-Admin-Key"},
    TENANT: {"X-API-Key"},
}


def test_openapi_declares_who_may_call() -> None:
    """The schema's security requirements say the same as the matrix: which key header(s)
    each operation takes (any one of them), none for the public ones."""
    spec = create_app(make_settings("sqlite:///unused.db")).openapi()
    schemes = spec.get("components", {}).get("securitySchemes", {})
    wrong = {}
    for path, operations in spec["paths"].items():
        if path in SVIX_PATHS:
            continue  # bearer tokens: tests/test_svix_authz.py
        for method, operation in operations.items():
            declared = {
                schemes[name]["name"]
                for requirement in operation.get("security", [])
                for name in requirement
            }
            want = HEADERS[MATRIX[(method.upper(), path)].access]
            if declared != want:
                wrong[f"{method.upper()} {path}"] = (sorted(declared), sorted(want))
    assert not wrong, f"declared vs expected key headers: {wrong}"


# -- one request ----------------------------------------------------------------------------


def _target(world: World, row: Row, path: str) -> tuple[str, list[object]]:
    """The URL for own's objects, and the ids it holds."""
    own = world.own
    values: dict[str, Any] = {
        "tenant_id": own.id,
        "endpoint_id": own.endpoint_id,
        "entry_id": own.entry_id,
        "event_id": own.event_id,
        "name": own.event_type,
        "job_id": own.job_id,
        "delivery_id": min(own.delivery_ids),
    }
    if row.fresh == "event_type":
        values["name"] = world.event_type(own)
    if row.fresh == "endpoint":
        values["endpoint_id"] = world.endpoint(own, "/authz/doomed")
    if row.fresh == "entry":
        values["entry_id"] = own.retry_entries.pop()
    return path.format(**values), [v for k, v in values.items() if f"{{{k}}}" in path]


def _send(world: World, caller: str, method: str, url: str, body: Body) -> httpx.Response:
    json = body(world) if callable(body) else body
    with world.client(caller) as client:
        return client.request(method, url, json=json)


def _masked(response: httpx.Response, *ids: object) -> str:
    text = response.text
    for value in ids:
        text = re.sub(rf"(?<![\w-]){re.escape(str(value))}(?![\w-])", "<id>", text)
    return text


def _no_leak(world: World, response: httpx.Response, sent: str) -> None:
    """Nothing of ``own``'s in an answer to ``other`` (but what ``other`` sent itself, as
    the event_id a 404 message repeats)."""
    own = world.own
    text = response.text
    for secret in (own.token, own.name, own.email, own.key, own.secret, own.event_id):
        if secret in sent:
            continue
        assert secret not in text, f"answer to the other tenant holds {secret!r}: {text}"
    if not response.url.path.startswith("/api/"):
        return
    own_ids = {
        "tenant_id": {own.id},
        "endpoint_id": own.endpoint_ids,
        "delivery_id": own.delivery_ids,
        "delivery_ids": own.delivery_ids,
    }
    stack: list[Any] = [response.json()]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            stack.extend(node.values())
            for key, ids in own_ids.items():
                value = node.get(key)
                values = set(value) if isinstance(value, list) else {value}
                assert not values & ids, f"own's {key} in an answer to other: {node}"


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(("method", "path"), list(MATRIX), ids=[f"{m} {p}" for m, p in MATRIX])
def test_caller_gets_the_right_answer(world: World, method: str, path: str, caller: str) -> None:
    row = MATRIX[(method, path)]
    has_ids = "{" in path or row.names_own
    url, ids = _target(world, row, path)
    response = _send(world, caller, method, url, row.body)
    want = expected(row.access, caller, has_ids)

    if want == "401":
        assert_error(response, 401, "unauthorized")
    elif want == "2xx":
        assert 200 <= response.status_code < 300, (response.status_code, response.text)
    else:
        assert_error(response, 404, "not_found")
        # Exactly the answer for an id that does not exist: nothing tells them apart.
        missing_url = path.format(**MISSING)
        missing = _send(world, caller, method, missing_url, row.body)
        assert_error(missing, 404, "not_found")
        assert _masked(response, *ids) == _masked(missing, *MISSING.values())

    if caller == "other":
        _no_leak(world, response, sent=url)
    if response.status_code == 200 and path.endswith("/rotate-api-key"):
        world.own.key = response.json()["api_key"]  # the old key stopped working
    if response.status_code == 200 and path.endswith("/rotate-secret"):
        world.own.secret = response.json()["secret_key"]
