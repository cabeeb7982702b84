"""The operator console's sessions over plain HTTP: sign-in with the admin key, the cookie's
flags, CSRF and origin checks on every form, pages as HTML errors, security headers."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.fixtures.server import ADMIN_KEY, LiveServer


@pytest.fixture
def browser_like(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, follow_redirects=False, timeout=10) as client:
        yield client


def sign_in(client: httpx.Client) -> str:
    """Sign in; the CSRF token of the session."""
    response = client.post("/ui/login", data={"admin_key": ADMIN_KEY})
    assert response.status_code == 303, response.text
    page = client.get("/ui")
    assert page.status_code == 200
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found
    return found.group(1)


def test_pages_need_a_session(browser_like) -> None:
    for path in ("/ui", "/ui/tenants", "/ui/tenants/tnt_x"):
        response = browser_like.get(path)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/ui/login?next=")
    response = browser_like.post("/ui/tenants", data={"name": "x", "email": "a@b.co"})
    assert response.status_code == 401 and "text/html" in response.headers["content-type"]


def test_htmx_requests_without_a_session_load_the_sign_in_page(browser_like) -> None:
    """Polling (the live table, a job's progress) after the session ended: htmx is told to
    load the sign-in page (``HX-Redirect``, back to the page shown), not to swap it in."""
    htmx = {"HX-Request": "true", "HX-Current-URL": "http://testserver/ui/live?x=1"}
    for path in ("/ui/live/rows", "/ui/tenants/tnt_x/jobs/job_x/progress"):
        response = browser_like.get(path, headers=htmx)
        assert response.status_code == 401, (path, response.text)
        assert response.headers["hx-redirect"] == "/ui/login?next=/ui/live%3Fx%3D1"
        assert response.text == "" and "location" not in response.headers
    browser_like.cookies.set("webhookd_console", "stale")
    expired = browser_like.get("/ui/live/rows", headers={"HX-Request": "true"})
    assert expired.headers["hx-redirect"] == "/ui/login?next=/ui"
    posted = browser_like.post("/ui/tenants", headers=htmx, data={"name": "x"})
    assert posted.status_code == 401 and posted.headers["hx-redirect"].startswith("/ui/login")
    # Without htmx, as before: a redirect to the sign-in page.
    plain = browser_like.get("/ui/live/rows")
    assert plain.status_code == 303 and "hx-redirect" not in plain.headers


def test_sign_in_sets_a_safe_cookie(browser_like) -> None:
    wrong = browser_like.post("/ui/login", data={"admin_key": "whadm_nope"})
    assert wrong.status_code == 401 and "not the admin key" in wrong.text
    response = browser_like.post("/ui/login", data={"admin_key": ADMIN_KEY, "next": "/ui/tenants"})
    assert response.status_code == 303 and response.headers["location"] == "/ui/tenants"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "max-age=" in cookie
    # Only paths of the console are followed after sign-in.
    elsewhere = browser_like.post(
        "/ui/login", data={"admin_key": ADMIN_KEY, "next": "https://evil.example/"}
    )
    assert elsewhere.headers["location"] == "/ui"


def test_forms_need_the_csrf_token_and_this_origin(browser_like) -> None:
    csrf = sign_in(browser_like)
    body = {"name": "csrf test", "email": "c@example.com"}
    missing = browser_like.post("/ui/tenants", data=body)
    assert missing.status_code == 403 and "CSRF" in missing.text
    wrong = browser_like.post("/ui/tenants", data={**body, "csrf": "x" + csrf})
    assert wrong.status_code == 403
    foreign = browser_like.post(
        "/ui/tenants", data={**body, "csrf": csrf}, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403
    good = browser_like.post("/ui/tenants", data={**body, "csrf": csrf})
    assert good.status_code == 200 and "whk_" in good.text  # the key, shown once


def test_a_forged_or_foreign_cookie_is_no_session(browser_like, server: LiveServer) -> None:
    browser_like.cookies.set("webhookd_console", "eyJjc3JmIjoieCJ9.forged.sig")
    assert browser_like.get("/ui").status_code == 303


def test_sign_out_ends_the_session(browser_like) -> None:
    csrf = sign_in(browser_like)
    response = browser_like.post("/ui/logout", data={"csrf": csrf})
    assert response.status_code == 303 and response.headers["location"] == "/ui/login"
    assert browser_like.get("/ui").status_code == 303


def test_pages_carry_security_headers_and_html_errors(browser_like) -> None:
    sign_in(browser_like)
    page = browser_like.get("/ui/tenants")
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    missing = browser_like.get("/ui/tenants/tnt_01JEKX6V4W8S8N0C7W0R6FQ2ZB")
    assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]
    assert browser_like.get("/ui/static/vendor/htmx.min.js").status_code == 200
    # The API keeps its JSON errors.
    api = browser_like.get("/api/v1/tenants/tnt_01JEKX6V4W8S8N0C7W0R6FQ2ZB")
    assert api.status_code == 401 and api.json()["error"]["code"] == "unauthorized"


def test_tenant_forms_show_what_is_wrong(browser_like) -> None:
    csrf = sign_in(browser_like)
    bad = browser_like.post(
        "/ui/tenants", data={"csrf": csrf, "name": "x", "email": "not-an-email"}
    )
    assert bad.status_code == 422 and 'aria-invalid="true"' in bad.text
    created = browser_like.post(
        "/ui/tenants", data={"csrf": csrf, "name": "forms", "email": "f@example.com"}
    )
    tenant_id = re.search(r"/ui/tenants/(tnt_\w+)", created.text).group(1)
    wrong = browser_like.post(
        f"/ui/tenants/{tenant_id}",
        data={"csrf": csrf, "name": "forms", "email": "f@example.com", "retention_days": "0"},
    )
    assert wrong.status_code == 422 and "greater than or equal to 1" in wrong.text
    saved = browser_like.post(
        f"/ui/tenants/{tenant_id}",
        data={"csrf": csrf, "name": "forms2", "email": "f@example.com", "retention_days": "9"},
    )
    assert saved.status_code == 200 and "Saved." in saved.text
    assert 'value="9"' in saved.text
