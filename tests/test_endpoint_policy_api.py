"""The endpoint policy fields through the API: every validation error is a 422 naming the
field, unset fields read back as null, headers are replaced by PATCH and redacted on read,
and the tenant's operational webhook URL is checked like an endpoint URL."""

from __future__ import annotations

import pytest

from tests.api_errors import assert_error, field_names
from webhookd.delivery.headers import REDACTED

BAD = [
    ("retry_schedule", []),
    ("retry_schedule", [1] * 51),
    ("retry_schedule", [0]),
    ("retry_schedule", [-1]),
    ("retry_schedule", [604_801]),
    ("retry_schedule", ["soon"]),
    ("retry_schedule", 5),
    ("rate_limit", 0),
    ("rate_limit", -2),
    ("rate_limit", 10_001),
    ("rate_limit", "fast"),
    ("headers", {f"X-H{n}": "v" for n in range(21)}),
    ("headers", {"Bad Name": "v"}),
    ("headers", {"X-Ok": "line\r\nbreak"}),
    ("headers", {"X-Ok": "nul\x00"}),
    ("headers", {"X-Big": "v" * 4097}),
    ("headers", {"Host": "evil.example"}),
    ("headers", {"content-length": "1"}),
    ("headers", {"Transfer-Encoding": "chunked"}),
    ("headers", {"Connection": "close"}),
    ("headers", {"webhook-signature": "v1,forged"}),
    ("headers", {"X-Webhook-Signature": "forged"}),
    ("headers", {"X-A": "1", "x-a": "2"}),
    ("headers", {"Authorization": REDACTED}),  # nothing stored to keep
    ("headers", {"X-Plain": REDACTED}),
    ("headers", ["X-A: 1"]),
    ("ordering", "lifo"),
    ("disabled_reason", None),  # read-only
    ("circuit", "closed"),
    ("failing_since", None),
]


def field_named(response, field: str) -> None:
    error = assert_error(response, 422, "validation_error")
    assert field in field_names(error) or field in error["message"], response.text


@pytest.mark.parametrize(("field", "value"), BAD)
def test_create_refuses_with_the_field_named(tenant, receiver, field, value) -> None:
    response = tenant.client.post(
        f"/api/v1/tenants/{tenant.id}/endpoints", json={"url": receiver.url(), field: value}
    )
    field_named(response, field)


@pytest.mark.parametrize(("field", "value"), BAD)
def test_patch_refuses_with_the_field_named(tenant, receiver, field, value) -> None:
    endpoint = tenant.add_endpoint(receiver.url())
    response = tenant.client.patch(
        f"/api/v1/tenants/{tenant.id}/endpoints/{endpoint['id']}", json={field: value}
    )
    field_named(response, field)
    after = tenant.client.get(f"/api/v1/tenants/{tenant.id}/endpoints/{endpoint['id']}").json()
    assert after == endpoint  # nothing changed


def test_defaults_read_back(tenant, receiver) -> None:
    endpoint = tenant.add_endpoint(receiver.url())
    assert endpoint["retry_schedule"] is None and endpoint["rate_limit"] is None
    assert endpoint["headers"] is None and endpoint["ordering"] == "unordered"
    assert endpoint["disabled_reason"] is None and endpoint["circuit"] == "closed"
    assert endpoint["failing_since"] is None


def test_set_patch_and_unset(tenant, receiver) -> None:
    endpoint = tenant.add_endpoint(
        receiver.url(),
        retry_schedule=[60, 3600, 86400.5],
        rate_limit=0.5,
        headers={"X-Team": "payments"},
        ordering="fifo",
    )
    assert endpoint["retry_schedule"] == [60, 3600, 86400.5]
    assert endpoint["rate_limit"] == 0.5 and endpoint["ordering"] == "fifo"
    path = f"/api/v1/tenants/{tenant.id}/endpoints/{endpoint['id']}"
    patched = tenant.client.patch(path, json={"headers": {"X-Other": "1"}}).json()
    assert patched["headers"] == {"X-Other": "1"}  # replaced, not merged
    assert patched["rate_limit"] == 0.5  # untouched
    cleared = tenant.client.patch(
        path, json={"retry_schedule": None, "rate_limit": None, "headers": None}
    ).json()
    assert (cleared["retry_schedule"], cleared["rate_limit"], cleared["headers"]) == (
        None,
        None,
        None,
    )
    field_named(tenant.client.patch(path, json={"ordering": None}), "ordering")


def test_secret_headers_are_redacted_and_kept_on_round_trip(tenant, receiver) -> None:
    secret = "Bearer do-not-show-me"
    endpoint = tenant.add_endpoint(
        receiver.url("/api/redact"),
        headers={"Authorization": secret, "X-Api-Key": "k1", "X-Team": "payments"},
    )
    assert endpoint["headers"] == {
        "Authorization": REDACTED,
        "X-Api-Key": REDACTED,
        "X-Team": "payments",
    }
    path = f"/api/v1/tenants/{tenant.id}/endpoints/{endpoint['id']}"
    for response in (tenant.client.get(path), tenant.client.get(path.rsplit("/", 1)[0])):
        assert secret not in response.text and "k1" not in response.text
    # Read-modify-write: the redacted value keeps the stored one.
    body = {"headers": {**endpoint["headers"], "X-Team": "billing"}}
    assert tenant.client.patch(path, json=body).status_code == 200
    receiver.plan("/api/redact")
    assert tenant.publish(event_id="evt_redact").status_code == 202
    (request,) = receiver.wait_for(1, "/api/redact")
    assert request.header("Authorization") == secret and request.header("X-Api-Key") == "k1"
    assert request.header("X-Team") == "billing"


@pytest.mark.parametrize("url", ["ftp://example.com/x", "not a url", "http://"])
def test_operational_url_is_checked(admin, tenant, url) -> None:
    response = admin.patch(f"/api/v1/tenants/{tenant.id}", json={"operational_webhook_url": url})
    field_named(response, "operational_webhook_url")
    assert admin.get(f"/api/v1/tenants/{tenant.id}").json()["operational_webhook_url"] is None


def test_operational_url_set_and_cleared(admin, tenant, receiver) -> None:
    path = f"/api/v1/tenants/{tenant.id}"
    url = receiver.url("/ops")
    assert (
        admin.patch(path, json={"operational_webhook_url": url}).json()["operational_webhook_url"]
        == url
    )
    assert (
        admin.patch(path, json={"operational_webhook_url": None}).json()["operational_webhook_url"]
        is None
    )
