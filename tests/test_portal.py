"""The tenant portal over HTTP: one-time links (single use, expiry, API key rotation), what a
portal session may see and change (its tenant, its endpoint scope), and what it can never
reach (another tenant's objects, the console, the admin and tenant APIs)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import httpx
import pytest
from standardwebhooks import Webhook

from tests.conftest import TenantCtx
from tests.fixtures.db import run_sql
from tests.fixtures.delivery import wait_final, wait_until
from tests.fixtures.server import LiveServer, running_server

MISSING_EP = "ep_01JEKX6V4W8S8N0C7W0R6FQ2ZB"
MISSING_DLV = "dlv_01JEKX6V4W8S8N0C7W0R6FQ2ZB"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[LiveServer]:
    with running_server(tmp_path_factory, "portal", backend=backend, max_attempts=1) as srv:
        yield srv


def shown_secret(page: httpx.Response) -> str:
    assert page.status_code == 200, page.text
    assert page.headers["cache-control"] == "no-store"
    return re.search(r"<code data-secret>([^<]+)</code>", page.text).group(1)


def api_secret(tenant: TenantCtx, endpoint_id: str) -> str:
    response = tenant.client.get(f"/api/v1/tenants/{tenant.id}/endpoints/{endpoint_id}/secret")
    assert response.status_code == 200, response.text
    return response.json()["secret_key"]


def link(tenant: TenantCtx, **body: object) -> dict:
    response = tenant.client.post("/api/v1/portal-sessions", json=body or None)
    assert response.status_code == 201, response.text
    return response.json()


class PortalBrowser:
    """A browser-like client holding one portal session."""

    def __init__(self, server: LiveServer, url: str) -> None:
        self.client = httpx.Client(base_url=server.url, follow_redirects=False, timeout=10)
        opened = self.client.get(url.removeprefix(server.url))
        assert opened.status_code == 303, opened.text
        assert opened.headers["location"] == "/portal"
        self.cookie = opened.headers["set-cookie"]
        home = self.client.get("/portal")
        assert home.status_code == 200, home.text
        self.csrf = re.search(r'data-csrf="([^"]+)"', home.text).group(1)

    def post(self, path: str, **data: str) -> httpx.Response:
        return self.client.post(path, data={"csrf": self.csrf, **data})

    def close(self) -> None:
        self.client.close()


def test_links_are_single_use_and_expire(server, tenant, receiver) -> None:
    created = link(tenant, ttl=600)
    assert created["url"].startswith(server.url + "/portal/start?token=whptl_")
    assert created["endpoint_ids"] is None
    portal = PortalBrowser(server, created["url"])
    cookie = portal.cookie.lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/portal" in cookie
    portal.close()

    again = httpx.get(created["url"], follow_redirects=False)
    assert again.status_code == 401 and "cannot be used" in again.text

    expired = link(tenant)
    run_sql(
        server.settings,
        "UPDATE portal_tokens SET expires_at = :at WHERE used_at IS NULL",
        at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
    )
    assert httpx.get(expired["url"], follow_redirects=False).status_code == 401
    assert httpx.get(server.url + "/portal/start?token=whptl_nope").status_code == 401
    assert httpx.get(server.url + "/portal", follow_redirects=False).status_code == 401


def test_htmx_requests_of_an_ended_session_load_a_page_saying_so(server, admin, tenant) -> None:
    """An htmx request after the session ended is told to load the page that says so
    (``HX-Redirect``), not to swap the refusal into a part of the page."""
    portal = PortalBrowser(server, link(tenant)["url"])
    assert admin.post(f"/api/v1/tenants/{tenant.id}/rotate-api-key").status_code == 200
    for path in ("/portal", "/portal/endpoints/" + MISSING_EP):
        response = portal.client.get(path, headers={"HX-Request": "true"})
        assert response.status_code == 401, response.text
        assert response.headers["hx-redirect"] == "/portal/ended" and response.text == ""
    plain = portal.client.get("/portal")
    assert plain.status_code == 401 and "cannot be used" in plain.text
    stale = httpx.get(
        server.url + "/portal", headers={"HX-Request": "true"}, cookies={"webhookd_portal": "x"}
    )
    assert stale.headers["hx-redirect"] == "/portal/ended"
    ended = httpx.get(server.url + "/portal/ended")
    assert ended.status_code == 200 and "Your session has ended" in ended.text
    assert "frame-ancestors 'self' *" in ended.headers["content-security-policy"]
    portal.close()


def test_rotating_the_api_key_ends_links_and_sessions(server, admin, tenant) -> None:
    session_link, unused = link(tenant), link(tenant)
    portal = PortalBrowser(server, session_link["url"])
    rotated = admin.post(f"/api/v1/tenants/{tenant.id}/rotate-api-key")
    assert rotated.status_code == 200
    assert portal.client.get("/portal").status_code == 401
    assert httpx.get(unused["url"], follow_redirects=False).status_code == 401
    portal.close()


def test_link_requests_are_validated(tenant, other_tenant, admin) -> None:
    for body in ({"ttl": 59}, {"ttl": 86_401}, {"endpoint_ids": []}, {"extra": 1}):
        response = tenant.client.post("/api/v1/portal-sessions", json=body)
        assert response.status_code == 422, (body, response.text)
    theirs = other_tenant.add_endpoint("https://example.com/hook")
    response = tenant.client.post("/api/v1/portal-sessions", json={"endpoint_ids": [theirs["id"]]})
    assert response.status_code == 404
    assert admin.post("/api/v1/portal-sessions").status_code == 401


def test_portal_manages_endpoints_and_deliveries(server, tenant, receiver) -> None:
    receiver.plan("/portal/hook")
    portal = PortalBrowser(server, link(tenant)["url"])
    bad = portal.post("/portal/endpoints", url="ftp://x", event_types="")
    assert bad.status_code == 422 and 'aria-invalid="true"' in bad.text
    created = portal.post(
        "/portal/endpoints", url=receiver.url("/portal/hook"), event_types="order.*"
    )
    assert created.status_code == 303, created.text
    endpoint_id = created.headers["location"].rsplit("/", 1)[1]
    page = portal.client.get(created.headers["location"])
    assert page.status_code == 200 and receiver.url("/portal/hook") in page.text

    saved = portal.post(
        f"/portal/endpoints/{endpoint_id}",
        url=receiver.url("/portal/hook"),
        event_types="order.*, invoice.paid",
        rate_limit="5",
        filter='{"amount": {"$gte": 10}}',
        headers="X-Team: billing\nAuthorization: Bearer s3cret",
    )
    assert saved.status_code == 200 and "Saved." in saved.text
    assert "s3cret" not in saved.text  # a secret-looking header comes back redacted
    read = tenant.client.get(f"/api/v1/tenants/{tenant.id}/endpoints/{endpoint_id}").json()
    assert read["event_types"] == ["order.*", "invoice.paid"] and read["rate_limit"] == 5
    assert read["filter"] == {"amount": {"$gte": 10}}
    # Saved again as shown (redacted): the header keeps its value.
    shown = re.search(r'name="headers"[^>]*>([^<]*)<', saved.text).group(1)
    again = portal.post(
        f"/portal/endpoints/{endpoint_id}",
        url=receiver.url("/portal/hook"),
        event_types="order.*",
        headers=shown.replace("&#34;", '"'),
    )
    assert again.status_code == 200
    bad_filter = portal.post(
        f"/portal/endpoints/{endpoint_id}", url=receiver.url("/portal/hook"), filter="{nope"
    )
    assert bad_filter.status_code == 422 and "not valid JSON" in bad_filter.text

    sent = portal.post(f"/portal/endpoints/{endpoint_id}/test")
    assert sent.status_code == 303
    (request,) = receiver.wait_for(1, "/portal/hook")
    assert request.header("authorization") == "Bearer s3cret"
    delivery_id = sent.headers["location"].rsplit("=", 1)[1]

    def delivered() -> bool:
        return (
            "data-status>succeeded" in portal.client.get(f"/portal/deliveries/{delivery_id}").text
        )

    wait_until(delivered, what="the test delivery shown as succeeded")
    portal.close()


def test_portal_retries_a_failed_delivery_and_shows_the_secret(server, tenant, receiver) -> None:
    receiver.plan("/portal/dead", default=500)
    endpoint = tenant.add_endpoint(receiver.url("/portal/dead"))
    assert tenant.publish("order.paid", event_id="evt_portal_dead").status_code == 202
    dead = wait_final(tenant.client, "evt_portal_dead")
    assert dead["status"] == "dead"
    portal = PortalBrowser(server, link(tenant)["url"])
    listed = portal.client.get(f"/portal/endpoints/{endpoint['id']}?status=dead")
    assert dead["id"] in listed.text
    receiver.plan("/portal/dead")
    retried = portal.post(f"/portal/deliveries/{dead['id']}/retry")
    assert retried.status_code == 303
    assert wait_final(tenant.client, "evt_portal_dead")["status"] == "succeeded"
    assert portal.post(f"/portal/deliveries/{dead['id']}/retry").status_code == 409

    secret = portal.post("/portal/secret")
    assert shown_secret(secret) == tenant.secret_key
    assert "Endpoints with a secret of their own sign with theirs" in secret.text
    rotated = portal.post("/portal/secret/rotate")
    new = re.search(r"<code data-secret>([^<]+)</code>", rotated.text).group(1)
    assert new != tenant.secret_key
    assert tenant.client.get(f"/api/v1/tenants/{tenant.id}/secret").json()["secret_key"] == new
    portal.close()


def test_a_scoped_session_sees_its_endpoints_only(server, tenant, receiver) -> None:
    mine = tenant.add_endpoint(receiver.url("/portal/mine"))
    other = tenant.add_endpoint(receiver.url("/portal/other-ep"))
    portal = PortalBrowser(server, link(tenant, endpoint_ids=[mine["id"]])["url"])
    home = portal.client.get("/portal").text
    assert mine["id"] in home and other["id"] not in home
    assert "Add an endpoint" not in home and "/portal/secret" not in home
    assert portal.client.get(f"/portal/endpoints/{other['id']}").status_code == 404
    assert portal.post(f"/portal/endpoints/{other['id']}/test").status_code == 404
    assert portal.post("/portal/endpoints", url=receiver.url("/x")).status_code == 403
    assert portal.post("/portal/secret").status_code == 403
    portal.close()


def test_portal_reveals_and_rotates_an_endpoint_secret(server, tenant, receiver) -> None:
    receiver.plan("/portal/signed")
    endpoint_id = tenant.add_endpoint(receiver.url("/portal/signed"))["id"]
    portal = PortalBrowser(server, link(tenant)["url"])
    page = portal.client.get(f"/portal/endpoints/{endpoint_id}").text
    assert "Signing secret" in page and "signs its webhooks with the tenant" in page
    assert tenant.secret_key not in page  # shown only when asked (a POST)

    revealed = portal.post(f"/portal/endpoints/{endpoint_id}/secret")
    assert shown_secret(revealed) == api_secret(tenant, endpoint_id) == tenant.secret_key

    rotated = portal.post(f"/portal/endpoints/{endpoint_id}/secret/rotate")
    new = shown_secret(rotated)
    assert new != tenant.secret_key and new.startswith("whsec_")
    assert "A new secret of this endpoint" in rotated.text
    assert "with a secret of its own" in rotated.text
    assert api_secret(tenant, endpoint_id) == new
    again = portal.post(f"/portal/endpoints/{endpoint_id}/secret")
    assert shown_secret(again) == new and "keeps signing beside it until" in again.text
    assert tenant.client.get(f"/api/v1/tenants/{tenant.id}/secret").json()["secret_key"] == (
        tenant.secret_key  # the tenant's own secret did not change
    )

    assert tenant.publish(event_id="evt_portal_signed").status_code == 202
    (request,) = receiver.wait_for(1, "/portal/signed")
    Webhook(new).verify(request.body, request.headers)
    Webhook(tenant.secret_key).verify(request.body, request.headers)  # one day of grace
    portal.close()


def test_a_scoped_session_reaches_its_endpoints_secrets_only(server, tenant, receiver) -> None:
    """A link for some endpoints shows and rotates their secrets, never the tenant's (its
    other endpoints sign with it too): an endpoint that signs with it must first get one of
    its own."""
    mine = tenant.add_endpoint(receiver.url("/portal/mine-signed"))["id"]
    other = tenant.add_endpoint(receiver.url("/portal/other-signed"))["id"]
    portal = PortalBrowser(server, link(tenant, endpoint_ids=[mine])["url"])
    page = portal.client.get(f"/portal/endpoints/{mine}").text
    assert f'action="/portal/endpoints/{mine}/secret"' not in page
    assert f'action="/portal/endpoints/{mine}/secret/rotate"' in page
    assert 'href="/portal/secret"' not in page
    refused = portal.post(f"/portal/endpoints/{mine}/secret")
    assert refused.status_code == 403 and tenant.secret_key not in refused.text

    new = shown_secret(portal.post(f"/portal/endpoints/{mine}/secret/rotate"))
    assert new != tenant.secret_key and tenant.secret_key not in new
    assert api_secret(tenant, mine) == new
    assert shown_secret(portal.post(f"/portal/endpoints/{mine}/secret")) == new

    for path in (f"/portal/endpoints/{other}/secret", f"/portal/endpoints/{other}/secret/rotate"):
        response = portal.post(path)
        assert response.status_code == 404, (path, response.text)
        assert tenant.secret_key not in response.text
    assert api_secret(tenant, other) == tenant.secret_key  # not rotated
    portal.close()


def test_a_portal_session_reaches_nothing_else(server, tenant, other_tenant, receiver) -> None:
    """The matrix: with a portal session of ``tenant``, every portal route aimed at
    ``other_tenant``'s objects answers exactly as for objects that do not exist, and the
    console and the APIs do not take the portal's cookie."""
    theirs = other_tenant.add_endpoint(receiver.url("/portal/theirs"))
    receiver.plan("/portal/theirs", default=500)
    assert other_tenant.publish("a.b", event_id="evt_theirs").status_code == 202
    their_delivery = wait_final(other_tenant.client, "evt_theirs")["id"]
    portal = PortalBrowser(server, link(tenant)["url"])
    routes = [
        ("GET", "/portal/endpoints/{ep}"),
        ("POST", "/portal/endpoints/{ep}"),
        ("POST", "/portal/endpoints/{ep}/test"),
        ("POST", "/portal/endpoints/{ep}/secret"),
        ("POST", "/portal/endpoints/{ep}/secret/rotate"),
        ("GET", "/portal/deliveries/{dlv}"),
        ("POST", "/portal/deliveries/{dlv}/retry"),
    ]
    for method, path in routes:
        answers = []
        for ep, dlv in ((theirs["id"], their_delivery), (MISSING_EP, MISSING_DLV)):
            url = path.format(ep=ep, dlv=dlv)
            if method == "GET":
                response = portal.client.get(url)
            else:
                response = portal.post(url, url=receiver.url("/portal/x"))
            answers.append(
                (response.status_code, response.text.replace(ep, "<id>").replace(dlv, "<id>"))
            )
        assert answers[0][0] == 404, (method, path, answers[0])
        assert answers[0] == answers[1], (method, path)
        assert "evt_theirs" not in answers[0][1]
    assert portal.client.get("/ui").status_code == 303  # the console: sign in first
    for method, path in (
        ("GET", "/api/v1/tenants"),
        ("GET", f"/api/v1/tenants/{tenant.id}/endpoints"),
        ("GET", "/api/v1/events"),
        ("POST", "/api/v1/portal-sessions"),
    ):
        response = portal.client.request(method, path)
        assert response.status_code == 401, (method, path, response.text)
    portal.close()


def test_frame_ancestors_and_brand_come_from_the_tenant(server, admin, tenant) -> None:
    response = admin.patch(
        f"/api/v1/tenants/{tenant.id}",
        json={
            "portal_frame_ancestors": ["https://app.example.com"],
            "portal_brand_color": "#aa3300",
            "portal_logo_url": "https://cdn.example.com/logo.png",
        },
    )
    assert response.status_code == 200, response.text
    for bad in (
        {"portal_frame_ancestors": ["https://app.example.com/path"]},
        {"portal_frame_ancestors": ["javascript:alert(1)"]},
        {"portal_brand_color": "red; }"},
        {"portal_logo_url": "http://insecure.example/logo.png"},
    ):
        assert admin.patch(f"/api/v1/tenants/{tenant.id}", json=bad).status_code == 422, bad
    portal = PortalBrowser(server, link(tenant)["url"])
    home = portal.client.get("/portal")
    csp = home.headers["content-security-policy"]
    assert "frame-ancestors 'self' https://app.example.com" in csp
    assert "img-src 'self' data: https://cdn.example.com" in csp
    assert 'src="https://cdn.example.com/logo.png"' in home.text
    css = portal.client.get("/portal/brand.css")
    assert css.headers["content-type"].startswith("text/css") and "#aa3300" in css.text
    portal.close()
    # Without an allow-list the portal cannot be framed.
    admin.patch(f"/api/v1/tenants/{tenant.id}", json={"portal_frame_ancestors": None})
    plain = PortalBrowser(server, link(tenant)["url"])
    assert (
        "frame-ancestors 'none'" in plain.client.get("/portal").headers["content-security-policy"]
    )
    plain.close()


def test_portal_forms_need_the_csrf_token(server, tenant, receiver) -> None:
    endpoint_id = tenant.add_endpoint(receiver.url("/portal/csrf"))["id"]
    portal = PortalBrowser(server, link(tenant)["url"])
    response = portal.client.post("/portal/endpoints", data={"url": receiver.url("/x")})
    assert response.status_code == 403
    for path in (
        f"/portal/endpoints/{endpoint_id}/secret",
        f"/portal/endpoints/{endpoint_id}/secret/rotate",
    ):
        for data in ({}, {"csrf": "stale"}):
            response = portal.client.post(path, data=data)
            assert response.status_code == 403, (path, data, response.text)
            assert tenant.secret_key not in response.text
    assert api_secret(tenant, endpoint_id) == tenant.secret_key  # not rotated
    portal.close()
