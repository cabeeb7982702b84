"""The delivery lifecycle, as tables: (delivery, outcome, policy, now) -> the row's next values."""

from __future__ import annotations

import datetime as dt

import pytest

from webhookd.delivery import lifecycle
from webhookd.delivery.fairness import to_key
from webhookd.delivery.job import Job, Outcome
from webhookd.delivery.policy import EndpointPolicy
from webhookd.models import DeliveryStatus

NOW = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)
POLICY = EndpointPolicy(
    retry_schedule=(1.0, 2.0, 4.0),  # four attempts
    retry_after_cap=30.0,
    max_in_flight=10,
    request_timeout=10.0,
    connect_timeout=5.0,
)
KEY = 1_700_000_000_000_000


def outcome(
    attempt: int,
    *,
    status: int | None,
    retry_after: float | None = None,
    schedule: tuple[float, ...] | None = None,
) -> Outcome:
    job = Job(
        delivery_id=7,
        tenant_id=1,
        endpoint_id=2,
        event_pk=3,
        url="https://example.com/hook",
        secrets=("whsec_x",),
        event_id="evt_1",
        event_type="user.created",
        payload={},
        created_at=NOW,
        attempt_number=attempt,
        cycle=1,
        queue_key=KEY,
        retry_schedule=schedule,
    )
    ok = status is not None and 200 <= status < 300
    return Outcome(
        job,
        NOW,
        12.5,
        succeeded=ok,
        response_status=status,
        error_kind=None if ok else ("http_status" if status else "timeout"),
        error_message=None if ok else "boom",
        retry_after=retry_after,
    )


@pytest.mark.parametrize(
    ("attempt", "status", "retry_after", "expected", "retry_in"),
    [
        (1, 200, None, DeliveryStatus.SUCCEEDED, None),
        (4, 204, None, DeliveryStatus.SUCCEEDED, None),  # the last attempt may succeed
        (1, 500, None, DeliveryStatus.RETRYING, 1.0),
        (3, None, None, DeliveryStatus.RETRYING, 4.0),  # a timeout is a failure
        (2, 429, 10.0, DeliveryStatus.RETRYING, 10.0),  # Retry-After lengthens the wait
        (2, 503, 999.0, DeliveryStatus.RETRYING, 30.0),  # ...up to the policy's cap
        (1, 302, None, DeliveryStatus.RETRYING, 1.0),  # a redirect is a failure
        (4, 500, None, DeliveryStatus.DEAD, None),  # no attempts left
        (4, 429, 5.0, DeliveryStatus.DEAD, None),
    ],
)
def test_after_attempt(
    attempt: int,
    status: int | None,
    retry_after: float | None,
    expected: DeliveryStatus,
    retry_in: float | None,
) -> None:
    result = outcome(attempt, status=status, retry_after=retry_after)
    t = lifecycle.after_attempt(result, POLICY, NOW)
    assert (t.status, t.retry_in, t.dead_lettered) == (expected, retry_in, expected == "dead")
    assert set(t.values) == set(lifecycle.ATTEMPT_END_COLUMNS)
    v = t.values
    assert v["status"] == expected and v["attempt_count"] == attempt
    assert v["lease_owner"] is None and v["lease_expires_at"] is None
    assert v["last_status_code"] == status and v["updated_at"] == NOW
    if expected == DeliveryStatus.SUCCEEDED:
        assert v["next_attempt_at"] is None and v["delivered_at"] == NOW
        assert v["last_error"] is None and v["queue_key"] == KEY
    elif expected == DeliveryStatus.RETRYING:
        due = NOW + dt.timedelta(seconds=retry_in or 0)
        assert v["next_attempt_at"] == due and v["queue_key"] == to_key(due)
        assert v["delivered_at"] is None and v["last_error"] == result.summary
    else:
        assert v["next_attempt_at"] is None and v["queue_key"] == KEY  # no longer live
        assert v["last_error"] == result.summary


def test_new_delivery_is_pending_and_due_now() -> None:
    assert lifecycle.new_delivery(NOW) == {
        "status": DeliveryStatus.PENDING,
        "attempt_count": 0,
        "cycle": 1,
        "next_attempt_at": NOW,
        "created_at": NOW,
        "updated_at": NOW,
    }


def test_a_lease_makes_the_row_due_again_when_it_expires() -> None:
    values = lifecycle.leased(owner="w1", now=NOW, lease=dt.timedelta(seconds=60))
    expires = NOW + dt.timedelta(seconds=60)
    assert values["status"] == DeliveryStatus.DELIVERING and values["lease_owner"] == "w1"
    assert values["next_attempt_at"] == values["lease_expires_at"] == expires


def test_a_released_claim_is_due_at_once_and_keeps_its_queue_key() -> None:
    values = lifecycle.released(NOW)
    assert values["next_attempt_at"] == NOW and values["lease_owner"] is None
    assert "queue_key" not in values and "status" not in values


@pytest.mark.parametrize("cycle", [1, 2, 9])
def test_requeued_starts_a_fresh_cycle(cycle: int) -> None:
    values = lifecycle.requeued(cycle, NOW)
    assert values["cycle"] == cycle + 1 and values["attempt_count"] == 0
    assert values["status"] == DeliveryStatus.PENDING
    assert values["next_attempt_at"] == NOW and values["queue_key"] == to_key(NOW)


def test_errors_are_cut_to_the_limit() -> None:
    result = outcome(4, status=500)
    result.error_message = "x" * 5000
    t = lifecycle.after_attempt(result, POLICY, NOW)
    assert len(t.values["last_error"]) == lifecycle.ERROR_LIMIT
    assert len(lifecycle.dead_letter_row(result, NOW)["last_error"]) == lifecycle.ERROR_LIMIT


@pytest.mark.parametrize(
    ("attempt", "schedule", "expected", "retry_in"),
    [
        (1, (3600.0, 86400.0), DeliveryStatus.RETRYING, 3600.0),  # the endpoint's own
        (2, (3600.0, 86400.0), DeliveryStatus.RETRYING, 86400.0),  # days: held in the row
        (3, (3600.0, 86400.0), DeliveryStatus.DEAD, None),  # its length sets the attempts
        (4, (5.0,) * 10, DeliveryStatus.RETRYING, 5.0),  # longer than the default
        (1, None, DeliveryStatus.RETRYING, 1.0),  # unset: the default schedule
    ],
)
def test_an_endpoint_schedule_replaces_the_default(
    attempt: int,
    schedule: tuple[float, ...] | None,
    expected: DeliveryStatus,
    retry_in: float | None,
) -> None:
    t = lifecycle.after_attempt(outcome(attempt, status=500, schedule=schedule), POLICY, NOW)
    assert (t.status, t.retry_in) == (expected, retry_in)


@pytest.mark.parametrize("attempt", [1, 4])  # even the last attempt is not dead-lettered
def test_410_leaves_the_delivery_waiting_for_the_enable(attempt: int) -> None:
    t = lifecycle.after_attempt(outcome(attempt, status=410), POLICY, NOW)
    assert t.status == DeliveryStatus.RETRYING and not t.dead_lettered and not t.finished
    assert t.values["next_attempt_at"] is None and t.retry_in is None
    assert t.values["attempt_count"] == attempt and t.values["last_status_code"] == 410


@pytest.mark.parametrize(
    ("attempt", "until", "status", "key"),
    [
        (1, NOW + dt.timedelta(seconds=30), DeliveryStatus.PENDING, to_key(NOW) + 30_000_000),
        (3, NOW + dt.timedelta(seconds=1), DeliveryStatus.RETRYING, to_key(NOW) + 1_000_000),
        (1, None, DeliveryStatus.PENDING, KEY),  # waiting: keeps its place
        (2, None, DeliveryStatus.RETRYING, KEY),
    ],
)
def test_put_back_uses_no_attempt(
    attempt: int, until: dt.datetime | None, status: DeliveryStatus, key: int
) -> None:
    values = lifecycle.put_back(outcome(attempt, status=None).job, until, NOW)
    assert set(values) == set(lifecycle.PUT_BACK_COLUMNS)
    assert "attempt_count" not in values
    assert values["status"] == status and values["next_attempt_at"] == until
    assert values["queue_key"] == key and values["lease_owner"] is None
