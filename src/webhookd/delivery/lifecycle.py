"""The life of a delivery row, as pure functions from (delivery, outcome, policy, now) to the
row's next values. The delivery store applies them; nothing else decides a delivery's state.

```
   publish     claim                       2xx
  ────────▶ pending ─────────▶ delivering ─────────▶ succeeded
               ▲               │  ▲     │
               │     failure,  │  │     │ failure, no attempts left
               │ attempts left ▼  │     ▼
               │         retrying ┘   dead (+ dead-letter entry)
               │      claim at next_attempt_at   │
               └─────────────────────────────────┘
                 DLQ retry (cycle + 1, attempts 0)
```

A claimed delivery may also be handed back unattempted (:func:`put_back`, no attempt
used): its endpoint's circuit is open or its rate limit is reached (due again later), its
endpoint is disabled, or it is not the head of a FIFO endpoint (waiting: no
``next_attempt_at`` until the endpoint is enabled or the delivery before it is done). A
410 Gone leaves the delivery waiting the same way: it goes out again on enable.

Invariant: ``next_attempt_at`` is set while a delivery is due or scheduled (pending,
retrying, delivering) and null once it is finished or waiting; a claimed row's
``next_attempt_at`` is its lease expiry, so a row whose worker died simply falls due again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from webhookd.delivery.fairness import to_key
from webhookd.delivery.job import Job, Outcome
from webhookd.delivery.policy import EndpointPolicy
from webhookd.ids import new_id
from webhookd.models import Delivery, DeliveryStatus

ERROR_LIMIT = 1000  # characters of an error kept on the delivery and its dead letter

# The columns an attempt's end sets (see :func:`after_attempt`).
ATTEMPT_END_COLUMNS: tuple[str, ...] = tuple(
    column.key
    for column in (
        Delivery.status,
        Delivery.attempt_count,
        Delivery.lease_owner,
        Delivery.lease_expires_at,
        Delivery.last_status_code,
        Delivery.updated_at,
        Delivery.next_attempt_at,
        Delivery.queue_key,
        Delivery.delivered_at,
        Delivery.last_error,
    )
)


def new_delivery(now: dt.datetime, *, waiting: bool = False) -> dict[str, Any]:
    """A new delivery's starting values, the same for every delivery of a publish (its
    ``queue_key`` is each row's own place in the fair order): pending, due now; or waiting
    (no next attempt), for an endpoint that is held (``health.held``) when it is created:
    it goes out when the endpoint's circuit closes or it is enabled, as if handed back."""
    return {
        Delivery.status.key: DeliveryStatus.PENDING,
        Delivery.attempt_count.key: 0,
        Delivery.cycle.key: 1,
        Delivery.next_attempt_at.key: None if waiting else now,
        Delivery.created_at.key: now,
        Delivery.updated_at.key: now,
    }


def leased(*, owner: str, now: dt.datetime, lease: dt.timedelta) -> dict[str, Any]:
    """A claimed delivery: delivering, and due again when the lease runs out."""
    until = now + lease
    return {
        Delivery.status.key: DeliveryStatus.DELIVERING,
        Delivery.lease_owner.key: owner,
        Delivery.lease_expires_at.key: until,
        Delivery.next_attempt_at.key: until,
        Delivery.updated_at.key: now,
    }


def renewed(*, now: dt.datetime, lease: dt.timedelta) -> dict[str, Any]:
    """A claimed delivery whose attempt is still out: its lease runs ``lease`` from now."""
    until = now + lease
    return {Delivery.lease_expires_at.key: until, Delivery.next_attempt_at.key: until}


def released(now: dt.datetime) -> dict[str, Any]:
    """A claim handed back unfinished (graceful stop): due at once, keeping its queue key,
    so the next worker takes it first."""
    return {
        Delivery.next_attempt_at.key: now,
        Delivery.lease_expires_at.key: now,
        Delivery.lease_owner.key: None,
        Delivery.updated_at.key: now,
    }


@dataclass(frozen=True, slots=True)
class Transition:
    """Where an attempt leaves its delivery."""

    outcome: Outcome
    status: DeliveryStatus
    values: dict[str, Any]  # the row's next values, keyed by ATTEMPT_END_COLUMNS
    retry_in: float | None  # seconds until the next attempt, when one is scheduled

    @property
    def dead_lettered(self) -> bool:
        return self.status == DeliveryStatus.DEAD

    @property
    def finished(self) -> bool:
        return self.status in (DeliveryStatus.SUCCEEDED, DeliveryStatus.DEAD)


GONE = 410  # the endpoint is gone: disable it, keep the delivery waiting


def after_attempt(outcome: Outcome, policy: EndpointPolicy, now: dt.datetime) -> Transition:
    """Success ends the delivery; a failure schedules the next attempt by the endpoint's
    policy (its own retry schedule, or ``policy``'s), or, with none left, dead-letters it;
    a 410 leaves it waiting for the endpoint's enable. A retry waits its turn in the fair
    order from when it falls due, like an event published then."""
    job = outcome.job
    retry_in: float | None = None
    if outcome.succeeded:
        status, next_at, error = DeliveryStatus.SUCCEEDED, None, None
    elif outcome.response_status == GONE:
        status, next_at, error = DeliveryStatus.RETRYING, None, outcome.summary[:ERROR_LIMIT]
    else:
        own = policy.for_schedule(job.retry_schedule)
        retry_in = own.next_delay(job.attempt_number, retry_after=outcome.retry_after)
        status = DeliveryStatus.DEAD if retry_in is None else DeliveryStatus.RETRYING
        next_at = None if retry_in is None else now + dt.timedelta(seconds=retry_in)
        error = outcome.summary[:ERROR_LIMIT]
    values = {
        Delivery.status.key: status,
        Delivery.attempt_count.key: job.attempt_number,
        Delivery.lease_owner.key: None,
        Delivery.lease_expires_at.key: None,
        Delivery.last_status_code.key: outcome.response_status,
        Delivery.updated_at.key: now,
        Delivery.next_attempt_at.key: next_at,
        Delivery.queue_key.key: to_key(next_at) if next_at is not None else job.queue_key,
        Delivery.delivered_at.key: now if outcome.succeeded else None,
        Delivery.last_error.key: error,
    }
    return Transition(outcome, status, values, retry_in)


# The columns a hand-back sets (see :func:`put_back`).
PUT_BACK_COLUMNS: tuple[str, ...] = tuple(
    column.key
    for column in (
        Delivery.status,
        Delivery.lease_owner,
        Delivery.lease_expires_at,
        Delivery.next_attempt_at,
        Delivery.queue_key,
        Delivery.updated_at,
    )
)


def put_back(job: Job, until: dt.datetime | None, now: dt.datetime) -> dict[str, Any]:
    """A claimed delivery handed back without an attempt: due again at ``until`` (taking
    its turn in the fair order from then), or waiting when ``until`` is None."""
    return {
        Delivery.status.key: job.waiting_status,
        Delivery.lease_owner.key: None,
        Delivery.lease_expires_at.key: None,
        Delivery.next_attempt_at.key: until,
        Delivery.queue_key.key: to_key(until) if until is not None else job.queue_key,
        Delivery.updated_at.key: now,
    }


def requeued(cycle: int, now: dt.datetime) -> dict[str, Any]:
    """A dead delivery sent again (DLQ retry): a fresh cycle of attempts from now; its
    earlier attempts stay on record under their cycle."""
    return {
        Delivery.status.key: DeliveryStatus.PENDING,
        Delivery.cycle.key: cycle + 1,
        Delivery.attempt_count.key: 0,
        Delivery.next_attempt_at.key: now,
        Delivery.queue_key.key: to_key(now),
        Delivery.lease_owner.key: None,
        Delivery.lease_expires_at.key: None,
        Delivery.updated_at.key: now,
    }


def attempt_row(outcome: Outcome) -> dict[str, Any]:
    """The attempt's own row (every attempt is kept)."""
    job = outcome.job
    return {
        "delivery_id": job.delivery_id,
        "cycle": job.cycle,
        "attempt_number": job.attempt_number,
        "started_at": outcome.started_at,
        "duration_ms": round(outcome.duration_ms, 3),
        "response_status": outcome.response_status,
        "response_body": outcome.response_body,
        "error_kind": outcome.error_kind,
        "error_message": outcome.error_message,
        "succeeded": outcome.succeeded,
    }


def dead_letter_row(outcome: Outcome, now: dt.datetime) -> dict[str, Any]:
    """The dead-letter entry of a delivery whose last attempt failed."""
    job = outcome.job
    return {
        "public_id": new_id(),
        "tenant_id": job.tenant_id,
        "delivery_id": job.delivery_id,
        "endpoint_id": job.endpoint_id,
        "event_id": job.event_pk,
        "event_type": job.event_type,
        "attempts": job.attempt_number,
        "last_error": outcome.summary[:ERROR_LIMIT],
        "resolved": False,
        "created_at": now,
    }
