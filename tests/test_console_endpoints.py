"""The operator console's endpoint pages over plain HTTP, on both backends: the list and the
new-endpoint form, an endpoint's health and recent deliveries, its policy form, and the
actions (pause, enable, send a test event that really reaches the receiver, delete)."""

from __future__ import annotations

import html
import json
import re
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import TenantCtx
from tests.fixtures.delivery import wait_until
from tests.fixtures.receiver import Receiver
from tests.fixtures.server import ADMIN_KEY, LiveServer, running_server

MISSING_ENDPOINT = "ep_01JEKX6V4W8S8N0C7W0R6FQ2ZB"


@pytest.fixture
def console(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, follow_redirects=False, timeout=10) as client:
        yield client


def sign_in(client: httpx.Client) -> str:
    """Sign in; the CSRF token of the session."""
    response = client.post("/ui/login", data={"admin_key": ADMIN_KEY})
    assert response.status_code == 303, response.text
    page = client.get("/ui")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found
    return found.group(1)


def hook_path() -> str:
    return f"/console-{uuid.uuid4().hex[:12]}"


def base(tenant: TenantCtx) -> str:
    return f"/ui/tenants/{tenant.id}/endpoints"


def api_endpoint(tenant: TenantCtx, endpoint_id: str) -> dict:
    response = tenant.client.get(f"/api/v1/tenants/{tenant.id}/endpoints/{endpoint_id}")
    assert response.status_code == 200, response.text
    return response.json()


def field_error(page: httpx.Response, prefix: str, field: str) -> str:
    """The message shown beside a field the form refused (and the field marked invalid)."""
    found = re.search(
        rf'id="{prefix}-{field}"[^>]*aria-invalid="true" aria-describedby="{prefix}-{field}-error"',
        page.text,
    )
    assert found, f"{field} is not marked invalid:\n{page.text}"
    message = re.search(
        rf'<small id="{prefix}-{field}-error" role="alert">([^<]*)</small>', page.text
    )
    assert message, page.text
    return html.unescape(message.group(1))


def create(console: httpx.Client, csrf: str, tenant: TenantCtx, url: str, **fields: str) -> str:
    """Create an endpoint through the console's form; its id."""
    response = console.post(base(tenant), data={"csrf": csrf, "url": url, **fields})
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    found = re.fullmatch(rf"{base(tenant)}/(ep_\w+)\?notice=created", location)
    assert found, location
    return found.group(1)


def policy_values(page: httpx.Response) -> dict[str, str]:
    """The policy form's fields as the page shows them (what a browser would send back)."""
    form = page.text[page.text.index('<h2 id="policy-heading">') :]
    values = {
        name: value
        for name, value in re.findall(
            r'<input id="ep-[^"]+" name="(\w+)" type="[^"]+" value="([^"]*)"', form
        )
    }
    for name, text in re.findall(
        r'<textarea id="ep-\w+" name="(\w+)"[^>]*>([^<]*)</textarea>', form
    ):
        values[name] = text
    selected = re.search(r'<option value="(\w+)" selected>', form)
    assert selected
    values["ordering"] = selected.group(1)
    return {k: html.unescape(v) for k, v in values.items()}


def test_endpoint_pages_need_a_session(console, tenant: TenantCtx) -> None:
    for path in (base(tenant), f"{base(tenant)}/{MISSING_ENDPOINT}"):
        response = console.get(path)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/ui/login?next=")
    refused = console.post(f"{base(tenant)}/{MISSING_ENDPOINT}/pause", data={"csrf": "x"})
    assert refused.status_code == 401


def test_create_list_and_open_an_endpoint(console, tenant: TenantCtx, receiver: Receiver) -> None:
    csrf = sign_in(console)
    empty = console.get(base(tenant))
    assert empty.status_code == 200 and "No endpoint yet." in empty.text
    assert '<label for="new-url">URL</label>' in empty.text

    url = receiver.url(hook_path())
    endpoint_id = create(
        console, csrf, tenant, url, event_types="user.created, invoice.*", description="billing"
    )
    stored = api_endpoint(tenant, endpoint_id)
    assert stored["url"] == url and stored["event_types"] == ["user.created", "invoice.*"]
    assert stored["description"] == "billing"

    created = console.get(f"{base(tenant)}/{endpoint_id}?notice=created")
    assert created.status_code == 200
    assert 'role="status" class="saved">Endpoint created.' in created.text
    assert 'data-health="state"><span class="state-active">active' in created.text
    assert 'data-health="circuit">closed' in created.text
    assert "No delivery yet." in created.text
    assert policy_values(created)["event_types"] == "user.created, invoice.*"

    listing = console.get(base(tenant))
    assert listing.status_code == 200
    row = re.search(rf'<tr data-endpoint="{endpoint_id}">(.*?)</tr>', listing.text, re.S)
    assert row, listing.text
    assert f'href="{base(tenant)}/{endpoint_id}">{url}</a>' in row.group(1)
    assert "user.created, invoice.*" in row.group(1) and "active" in row.group(1)
    assert 'class="table-wrap"' in listing.text


def test_new_endpoint_form_names_what_is_wrong(console, tenant: TenantCtx) -> None:
    csrf = sign_in(console)
    missing = console.post(base(tenant), data={"csrf": csrf, "url": "", "description": "x"})
    assert missing.status_code == 422
    assert field_error(missing, "new", "url") == "required"
    assert 'value="x"' in missing.text  # what was typed is kept

    bad_type = console.post(
        base(tenant), data={"csrf": csrf, "url": "https://example.com/h", "event_types": "ok, b@d"}
    )
    assert bad_type.status_code == 422
    assert "event type" in field_error(bad_type, "new", "event_types")

    scheme = console.post(base(tenant), data={"csrf": csrf, "url": "ftp://example.com/h"})
    assert scheme.status_code == 422
    assert "scheme 'ftp' is not allowed" in field_error(scheme, "new", "url")
    assert api_listing(tenant) == []


def api_listing(tenant: TenantCtx) -> list[dict]:
    response = tenant.client.get(f"/api/v1/tenants/{tenant.id}/endpoints")
    assert response.status_code == 200
    return response.json()["items"]


def test_policy_form_saves_and_keeps_redacted_secrets(
    console, tenant: TenantCtx, receiver: Receiver
) -> None:
    csrf = sign_in(console)
    path = hook_path()
    endpoint_id = create(console, csrf, tenant, receiver.url(path))
    page_url = f"{base(tenant)}/{endpoint_id}"
    form = {
        "csrf": csrf,
        "url": receiver.url(path),
        "event_types": "user.created",
        "description": "with policies",
        "retry_schedule": "1, 2.5,60",
        "rate_limit": "0.5",
        "ordering": "fifo",
        "headers": "Authorization: Bearer s3cret\r\nX-Team: payments",
        "filter": '{"n": {"$gte": 1}}',
    }
    saved = console.post(page_url, data=form)
    assert saved.status_code == 303 and saved.headers["location"] == f"{page_url}?notice=saved"
    stored = api_endpoint(tenant, endpoint_id)
    assert stored["retry_schedule"] == [1, 2.5, 60] and stored["rate_limit"] == 0.5
    assert stored["ordering"] == "fifo" and stored["filter"] == {"n": {"$gte": 1}}
    assert stored["headers"] == {"Authorization": "[redacted]", "X-Team": "payments"}

    page = console.get(page_url)
    assert "s3cret" not in page.text
    shown = policy_values(page)
    assert shown["headers"] == "Authorization: [redacted]\nX-Team: payments"
    assert shown["retry_schedule"] == "1, 2.5, 60" and shown["rate_limit"] == "0.5"
    assert json.loads(shown["filter"]) == {"n": {"$gte": 1}}

    # Saved again as shown (the secret redacted), and with only another header changed:
    # the stored secret stays.
    assert console.post(page_url, data={**shown, "csrf": csrf}).status_code == 303
    changed = {**shown, "csrf": csrf, "headers": "Authorization: [redacted]\nX-Team: ops"}
    assert console.post(page_url, data=changed).status_code == 303
    assert api_endpoint(tenant, endpoint_id)["headers"]["X-Team"] == "ops"
    unordered = {**changed, "ordering": "unordered", "rate_limit": ""}
    assert console.post(page_url, data=unordered).status_code == 303
    sent = console.post(f"{page_url}/test", data={"csrf": csrf})
    assert sent.status_code == 303
    (request,) = receiver.wait_for(1, path)
    assert request.header("Authorization") == "Bearer s3cret" and request.header("X-Team") == "ops"

    # Empty fields are unset.
    cleared = {
        **shown,
        "csrf": csrf,
        "event_types": "",
        "description": "",
        "retry_schedule": "",
        "rate_limit": "",
        "headers": "",
        "filter": "",
    }
    assert console.post(page_url, data=cleared).status_code == 303
    stored = api_endpoint(tenant, endpoint_id)
    for name in ("description", "retry_schedule", "rate_limit", "headers", "filter"):
        assert stored[name] is None, name
    assert stored["event_types"] == []


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("url", "", "required"),
        ("retry_schedule", "60, soon", "delay 2: Input should be a valid number"),
        ("retry_schedule", "0", "greater than 0"),
        ("rate_limit", "-1", "greater than 0"),
        ("headers", "X-Team payments", "line 1: write one header per line as Name: value"),
        ("headers", "Host: elsewhere", "may not be replaced"),
        ("filter", "{not json", "not valid JSON"),
        ("filter", "[1, 2]", "valid dictionary"),
        ("filter", '{"n": {"$near": 1}}', "$near"),
        ("ordering", "sideways", "'unordered' or 'fifo'"),
    ],
)
def test_policy_form_names_what_is_wrong(
    console, tenant: TenantCtx, field: str, value: str, message: str
) -> None:
    csrf = sign_in(console)
    endpoint_id = create(console, csrf, tenant, "https://example.com/hook")
    page_url = f"{base(tenant)}/{endpoint_id}"
    shown = policy_values(console.get(page_url))
    refused = console.post(page_url, data={**shown, "csrf": csrf, field: value})
    assert refused.status_code == 422
    assert "text/html" in refused.headers["content-type"]
    assert message in field_error(refused, "ep", field)
    assert api_endpoint(tenant, endpoint_id)["url"] == "https://example.com/hook"


def test_policy_form_shows_every_error_at_once(console, tenant: TenantCtx) -> None:
    csrf = sign_in(console)
    endpoint_id = create(console, csrf, tenant, "https://example.com/hook")
    page_url = f"{base(tenant)}/{endpoint_id}"
    shown = policy_values(console.get(page_url))
    bad = {**shown, "csrf": csrf, "headers": "no colon", "rate_limit": "fast", "filter": "{"}
    refused = console.post(page_url, data=bad)
    assert refused.status_code == 422
    for field in ("headers", "rate_limit", "filter"):
        field_error(refused, "ep", field)
    assert policy_values(refused)["rate_limit"] == "fast"  # what was typed is kept


def test_test_event_reaches_the_receiver(console, tenant: TenantCtx, receiver: Receiver) -> None:
    csrf = sign_in(console)
    path = hook_path()
    endpoint_id = create(console, csrf, tenant, receiver.url(path), event_types="nothing.here")
    page_url = f"{base(tenant)}/{endpoint_id}"
    sent = console.post(f"{page_url}/test", data={"csrf": csrf})
    assert sent.status_code == 303
    delivery_id = re.fullmatch(rf"{page_url}\?sent=(dlv_\w+)", sent.headers["location"]).group(1)
    (request,) = receiver.wait_for(1, path)
    body = json.loads(request.body)
    assert body["event_type"] == "webhookd.test" and body["payload"]["endpoint_id"] == endpoint_id
    assert request.header("webhook-id") == delivery_id

    def succeeded() -> httpx.Response | None:
        page = console.get(sent.headers["location"])
        return page if 'class="status-succeeded">succeeded</strong>' in page.text else None

    page = wait_until(succeeded, what="the test delivery shown succeeded")
    assert f'data-test-delivery="{delivery_id}"' in page.text
    assert f'<tr data-delivery="{delivery_id}">' in page.text
    assert 'data-health="success_rate">100% (1 of 1)' in page.text
    assert 'data-health="last_error">none' in page.text


def test_failures_show_in_the_health(console, tenant: TenantCtx, receiver: Receiver) -> None:
    csrf = sign_in(console)
    path = hook_path()
    receiver.plan(path, default=500)
    endpoint_id = create(console, csrf, tenant, receiver.url(path))
    page_url = f"{base(tenant)}/{endpoint_id}"
    assert console.post(f"{page_url}/test", data={"csrf": csrf}).status_code == 303
    receiver.wait_for(1, path)

    def failing() -> httpx.Response | None:
        page = console.get(page_url)
        # (Not while a retry is under way: a delivering delivery is not counted.)
        shown = "(HTTP 500)" in page.text and ">0% (0 of 1)" in page.text
        return page if shown else None

    page = wait_until(failing, what="the failure shown")
    assert 'data-health="success_rate">0% (0 of 1)' in page.text
    consecutive = re.search(r'data-health="consecutive_failures">(\d+)<', page.text)
    assert consecutive and int(consecutive.group(1)) >= 1
    assert 'data-health="failing_since">—' not in page.text


def test_pause_and_enable(console, tenant: TenantCtx, receiver: Receiver) -> None:
    csrf = sign_in(console)
    path = hook_path()
    endpoint_id = create(console, csrf, tenant, receiver.url(path))
    page_url = f"{base(tenant)}/{endpoint_id}"

    paused = console.post(f"{page_url}/pause", data={"csrf": csrf})
    assert paused.status_code == 303 and paused.headers["location"] == f"{page_url}?notice=paused"
    assert api_endpoint(tenant, endpoint_id)["is_active"] is False
    page = console.get(paused.headers["location"])
    assert 'data-health="state"><span class="state-paused">paused' in page.text
    assert "Send test event" not in page.text and ">Enable</button>" in page.text
    listing = console.get(base(tenant))
    assert re.search(rf'data-endpoint="{endpoint_id}">.*?paused', listing.text, re.S)

    refused = console.post(f"{page_url}/test", data={"csrf": csrf})
    assert refused.status_code == 409 and "enable it before sending" in refused.text

    enabled = console.post(f"{page_url}/enable", data={"csrf": csrf})
    assert (
        enabled.status_code == 303 and enabled.headers["location"] == f"{page_url}?notice=enabled"
    )
    assert api_endpoint(tenant, endpoint_id)["is_active"] is True
    assert console.post(f"{page_url}/test", data={"csrf": csrf}).status_code == 303
    receiver.wait_for(1, path)


def test_enable_clears_a_disabled_reason(console, tenant: TenantCtx, receiver: Receiver) -> None:
    csrf = sign_in(console)
    path = hook_path()
    receiver.plan(path, 410)
    endpoint_id = create(console, csrf, tenant, receiver.url(path))
    page_url = f"{base(tenant)}/{endpoint_id}"
    assert console.post(f"{page_url}/test", data={"csrf": csrf}).status_code == 303
    wait_until(
        lambda: api_endpoint(tenant, endpoint_id)["disabled_reason"] == "gone",
        what="the endpoint disabled (410 Gone)",
    )
    page = console.get(page_url)
    assert 'data-health="state"><span class="state-disabled">disabled (gone)' in page.text
    listing = console.get(base(tenant))
    assert re.search(rf'data-endpoint="{endpoint_id}">.*?disabled \(gone\)', listing.text, re.S)

    assert console.post(f"{page_url}/enable", data={"csrf": csrf}).status_code == 303
    stored = api_endpoint(tenant, endpoint_id)
    assert stored["disabled_reason"] is None and stored["circuit"] == "closed"
    # What waited for it goes out now (the receiver answers 200 from here on).
    receiver.wait_for(2, path)


def test_delete_needs_a_confirmation(console, tenant: TenantCtx) -> None:
    csrf = sign_in(console)
    endpoint_id = create(console, csrf, tenant, "https://example.com/delete-me")
    page_url = f"{base(tenant)}/{endpoint_id}"
    confirm = console.get(f"{page_url}/delete")
    assert confirm.status_code == 200 and "Delete endpoint?" in confirm.text
    assert 'name="confirm" value="yes" required' in confirm.text

    unconfirmed = console.post(f"{page_url}/delete", data={"csrf": csrf})
    assert unconfirmed.status_code == 422 and 'aria-invalid="true"' in unconfirmed.text
    assert 'id="confirm-error" role="alert"' in unconfirmed.text
    api_endpoint(tenant, endpoint_id)  # still there

    deleted = console.post(f"{page_url}/delete", data={"csrf": csrf, "confirm": "yes"})
    assert (
        deleted.status_code == 303
        and deleted.headers["location"] == f"{base(tenant)}?notice=deleted"
    )
    assert "Endpoint deleted" in console.get(deleted.headers["location"]).text
    gone = console.get(page_url)
    assert gone.status_code == 404 and "text/html" in gone.headers["content-type"]


def test_actions_need_the_csrf_token(console, tenant: TenantCtx) -> None:
    csrf = sign_in(console)
    endpoint_id = create(console, csrf, tenant, "https://example.com/csrf")
    page_url = f"{base(tenant)}/{endpoint_id}"
    for action in ("pause", "test", "enable", "delete"):
        missing = console.post(f"{page_url}/{action}", data={"confirm": "yes"})
        assert missing.status_code == 403 and "CSRF" in missing.text
    foreign = console.post(
        f"{page_url}/pause", data={"csrf": csrf}, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403
    stale = console.post(page_url, data={"csrf": csrf + "x", "url": "https://example.com/other"})
    assert stale.status_code == 403
    refused_create = console.post(base(tenant), data={"url": "https://example.com/x"})
    assert refused_create.status_code == 403
    stored = api_endpoint(tenant, endpoint_id)
    assert stored["is_active"] is True and stored["url"] == "https://example.com/csrf"
    assert len(api_listing(tenant)) == 1


def test_another_tenants_endpoint_is_not_found(
    console, tenant: TenantCtx, other_tenant: TenantCtx
) -> None:
    csrf = sign_in(console)
    theirs = other_tenant.add_endpoint("https://example.com/theirs")["id"]
    under_mine = f"{base(tenant)}/{theirs}"
    for response in (
        console.get(under_mine),
        console.get(f"{under_mine}/delete"),
        console.post(under_mine, data={"csrf": csrf, "url": "https://example.com/mine"}),
        console.post(f"{under_mine}/pause", data={"csrf": csrf}),
        console.post(f"{under_mine}/enable", data={"csrf": csrf}),
        console.post(f"{under_mine}/test", data={"csrf": csrf}),
        console.post(f"{under_mine}/delete", data={"csrf": csrf, "confirm": "yes"}),
        console.get(f"{base(tenant)}/{MISSING_ENDPOINT}"),
        console.get(f"{base(tenant)}/not-an-id"),
        console.get("/ui/tenants/tnt_01JEKX6V4W8S8N0C7W0R6FQ2ZB/endpoints"),
    ):
        assert response.status_code == 404, (response.request.url, response.text)
        assert "text/html" in response.headers["content-type"]
        assert "not found" in response.text
    stored = api_endpoint(other_tenant, theirs)
    assert stored["is_active"] is True and stored["url"] == "https://example.com/theirs"


# -- the SSRF guard: a server that refuses private targets (SQLite only) ---------------------


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with running_server(tmp_path_factory, "strict", allow_private_targets=False) as srv:
        yield srv


def test_private_targets_are_refused_on_the_url_field(strict_server: LiveServer) -> None:
    with (
        httpx.Client(base_url=strict_server.url, follow_redirects=False, timeout=10) as client,
        strict_server.client(**{"X-Admin-Key": ADMIN_KEY}) as admin,
    ):
        created = admin.post(
            "/api/v1/tenants", json={"name": "ssrf console", "email": "s@example.com"}
        )
        assert created.status_code == 201, created.text
        tenant_id = created.json()["id"]
        csrf = sign_in(client)
        path = f"/ui/tenants/{tenant_id}/endpoints"
        for url in ("http://10.0.0.1/hook", "http://169.254.169.254/latest/meta-data"):
            refused = client.post(path, data={"csrf": csrf, "url": url})
            assert refused.status_code == 422
            assert "private networks" in field_error(refused, "new", "url")
            assert f'value="{url}"' in refused.text
        ok = admin.post(f"/api/v1/tenants/{tenant_id}/endpoints", json={"url": "http://8.8.8.8/h"})
        assert ok.status_code == 201, ok.text
        page_url = f"{path}/{ok.json()['id']}"
        shown = policy_values(client.get(page_url))
        moved = client.post(page_url, data={**shown, "csrf": csrf, "url": "http://127.0.0.1:9/"})
        assert moved.status_code == 422
        assert "private networks" in field_error(moved, "ep", "url")
        stored = admin.get(f"/api/v1/tenants/{tenant_id}/endpoints/{ok.json()['id']}").json()
        assert stored["url"] == "http://8.8.8.8/h"
