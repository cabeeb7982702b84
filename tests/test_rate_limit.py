"""Per-tenant rate limiting of publishes: token bucket of ``rate_limit`` events per minute."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api_errors import assert_error
from tests.conftest import TenantCtx, create_tenant

# At 5 events/minute a token comes back every 12 s: far longer than these tests run, so
# the counts below are exact.
LIMIT = 5
SECONDS_PER_TOKEN = 60 / LIMIT


@pytest.fixture
def limited(server, admin) -> Iterator[TenantCtx]:
    ctx = create_tenant(server, admin, rate_limit=LIMIT)
    yield ctx
    ctx.client.close()


@pytest.fixture
def limited_neighbour(server, admin) -> Iterator[TenantCtx]:
    ctx = create_tenant(server, admin, rate_limit=LIMIT)
    yield ctx
    ctx.client.close()


def assert_rate_limited(response) -> int:
    """A 429 with the JSON error, the limit headers and Retry-After; returns Retry-After."""
    error = assert_error(response, 429, "rate_limited")
    assert str(LIMIT) in error["message"]
    assert response.headers["X-RateLimit-Limit"] == str(LIMIT)
    assert response.headers["X-RateLimit-Remaining"] == "0"
    retry_after = response.headers["Retry-After"]
    assert retry_after.isdigit(), retry_after
    # The bucket was emptied moments ago: the next token is (almost) a full 12 s away.
    assert SECONDS_PER_TOKEN - 2 <= int(retry_after) <= SECONDS_PER_TOKEN
    return int(retry_after)


def test_the_sixth_publish_within_a_minute_is_429(limited) -> None:
    for n in range(LIMIT):
        response = limited.publish("user.created", event_id=f"evt_ok_{n}")
        assert response.status_code == 202, response.text
        assert response.headers["X-RateLimit-Limit"] == str(LIMIT)
        assert response.headers["X-RateLimit-Remaining"] == str(LIMIT - 1 - n)
        assert "Retry-After" not in response.headers

    refused = limited.publish("user.created", event_id="evt_refused")
    assert_rate_limited(refused)
    # A refused event is not recorded.
    assert_error(limited.client.get("/api/v1/events/evt_refused"), 404, "not_found")
    listed = limited.client.get("/api/v1/events").json()["items"]
    assert len(listed) == LIMIT

    # And it stays refused: the next token is 12 s away.
    assert_rate_limited(limited.publish("user.created", event_id="evt_refused_again"))


def test_another_tenant_is_unaffected(limited, limited_neighbour, tenant) -> None:
    for n in range(LIMIT):
        assert limited.publish(event_id=f"evt_fill_{n}").status_code == 202
    assert_rate_limited(limited.publish(event_id="evt_over"))

    response = limited_neighbour.publish(event_id="evt_neighbour")
    assert response.status_code == 202, response.text
    assert response.headers["X-RateLimit-Remaining"] == str(LIMIT - 1)

    response = tenant.publish(event_id="evt_roomy")
    assert response.status_code == 202, response.text
    assert response.headers["X-RateLimit-Limit"] == "10000"

    assert_rate_limited(limited.publish(event_id="evt_still_over"))


def test_reads_are_not_rate_limited(limited) -> None:
    for n in range(LIMIT):
        assert limited.publish(event_id=f"evt_r{n}").status_code == 202
    for _ in range(3 * LIMIT):
        assert limited.client.get("/api/v1/events").status_code == 200
        assert limited.client.get(f"/api/v1/tenants/{limited.id}").status_code == 200


def test_lowering_the_limit_caps_the_bucket_at_once(server, admin, tenant) -> None:
    first = tenant.publish(event_id="evt_before")
    assert first.status_code == 202, first.text
    assert first.headers["X-RateLimit-Remaining"] == "9999"

    response = admin.patch(f"/api/v1/tenants/{tenant.id}", json={"rate_limit": 2})
    assert response.status_code == 200, response.text

    statuses = [tenant.publish(event_id=f"evt_after_{n}") for n in range(3)]
    assert [r.status_code for r in statuses] == [202, 202, 429]
    assert [r.headers["X-RateLimit-Limit"] for r in statuses] == ["2", "2", "2"]
    assert [r.headers["X-RateLimit-Remaining"] for r in statuses] == ["1", "0", "0"]
    assert statuses[-1].json()["error"]["code"] == "rate_limited"
    assert 28 <= int(statuses[-1].headers["Retry-After"]) <= 30  # 2/min: 30 s per token
