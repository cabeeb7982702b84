"""Security round 2, item 6: integers are delivered exactly as published, or refused with a
422 naming the field when webhookd cannot keep them exact (beyond 64 bits): orjson parsed
them as floats, and `{"a": 123456789012345678901234567890}` was delivered, signed, as
`1.2345678901234568e+29`."""

from __future__ import annotations

import orjson
import pytest
from standardwebhooks import Webhook

from tests.api_errors import assert_error, field_names
from tests.fixtures.delivery import wait_final

EDGES = {
    "max_unsigned": 18446744073709551615,  # 2**64 - 1
    "max_signed": 9223372036854775807,
    "min_signed": -9223372036854775808,
    "big_float": 1.5e300,
    "nested": [{"n": 12345678901234567890}],
}


def _post(tenant, body: bytes):
    return tenant.client.post(
        "/api/v1/events", content=body, headers={"Content-Type": "application/json"}
    )


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"123456789012345678901234567890", "payload.a"),
        (b"18446744073709551616", "payload.a"),  # 2**64
        (b"-9223372036854775809", "payload.a"),  # -2**63 - 1
        (b'[1, {"b": 99999999999999999999999}]', "payload.a.1.b"),
    ],
)
@pytest.mark.parametrize("cached_key", [False, True])
def test_an_integer_that_cannot_be_kept_exact_is_a_422_naming_it(
    tenant, raw: bytes, field: str, cached_key: bool
) -> None:
    if cached_key:  # the fast path serves publishes with a recently authenticated key
        assert tenant.publish(event_id=f"evt_warm_{field}").status_code == 202
    body = b'{"event_id": "evt_big", "event_type": "user.created", "payload": {"a": %s}}' % raw
    response = _post(tenant, body)
    error = assert_error(response, 422, "validation_error")
    assert field_names(error) == [field] and "outside the range" in error["message"]
    assert tenant.client.get("/api/v1/events/evt_big").status_code == 404  # nothing stored


def test_64_bit_integers_arrive_exactly_as_published(tenant, receiver) -> None:
    tenant.add_endpoint(receiver.url("/exact"))
    body = orjson.dumps({"event_id": "evt_exact", "event_type": "user.created", "payload": EDGES})
    assert _post(tenant, body).status_code == 202
    assert wait_final(tenant.client, "evt_exact")["status"] == "succeeded"
    (request,) = receiver.received("/exact")
    delivered = Webhook(tenant.secret_key).verify(request.body, request.headers)
    assert delivered["payload"] == EDGES
    assert b"18446744073709551615" in request.body and b"-9223372036854775808" in request.body
    stored = tenant.client.get("/api/v1/events/evt_exact").json()["payload"]
    assert stored == EDGES


def test_a_long_digit_run_inside_a_string_is_fine(tenant) -> None:
    body = orjson.dumps(
        {"event_id": "evt_str", "event_type": "user.created", "payload": {"id": "9" * 40}}
    )
    assert _post(tenant, body).status_code == 202


def test_other_bodies_refuse_inexact_integers_too(admin) -> None:
    response = admin.post(
        "/api/v1/tenants",
        content=b'{"name": "n", "email": "a@b.co", "rate_limit": 100000000000000000000000}',
        headers={"Content-Type": "application/json"},
    )
    assert field_names(assert_error(response, 422, "validation_error")) == ["rate_limit"]
