"""Security round 2, item 7: ids in paths. An event_id may not hold / ? # % \\ (refused at
publish with a 422), every other printable character works in a path, and an encoded
slash (%2F) never reaches a route: `GET /events/x%2Fdeliveries` used to answer event x's
deliveries."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.api_errors import assert_error, field_names

UNSAFE = ["a/b", "a?b", "a#b", "a%b", "a%2Fb", "a\\b", "/", "x/deliveries"]
SAFE = ["a:b", "a@b.c", "!$&'()*+,;=", "a~b", 'a"b', "[a]", "{a}|^`"]


@pytest.mark.parametrize("event_id", UNSAFE)
def test_publishing_a_path_unsafe_event_id_is_a_422(tenant, event_id: str) -> None:
    response = tenant.publish(event_id=event_id)
    assert field_names(assert_error(response, 422, "validation_error")) == ["event_id"]


@pytest.mark.parametrize("event_id", SAFE)
def test_every_other_printable_id_works_in_every_event_path(tenant, receiver, event_id) -> None:
    tenant.add_endpoint(receiver.url("/ids"))
    assert tenant.publish(event_id=event_id).status_code == 202
    path = quote(event_id, safe="")
    got = tenant.client.get(f"/api/v1/events/{path}")
    assert got.status_code == 200 and got.json()["event_id"] == event_id
    deliveries = tenant.client.get(f"/api/v1/events/{path}/deliveries")
    assert deliveries.status_code == 200 and len(deliveries.json()) >= 1


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/events/x%2Fdeliveries",
        "/api/v1/events/x%2fdeliveries",
        "/api/v1/events/evt%2F1",
        "/api/v1/events/evt%2F1/deliveries",
        "/api/v1/tenants/1%2F2",
        "/api/v1/tenants/{tenant}/endpoints/1%2F2",
        "/api/v1/dlq/1%2F2",
        "/api/v1/dlq/1%2Fretry",
    ],
)
def test_an_encoded_slash_in_a_path_is_a_404(tenant, path: str) -> None:
    # An event "x" exists: the encoded slash must not route to its deliveries.
    assert tenant.publish(event_id="x").status_code in (200, 202)
    method = tenant.client.post if path.endswith("retry") else tenant.client.get
    response = method(path.replace("{tenant}", str(tenant.id)))
    assert_error(response, 404, "not_found")
