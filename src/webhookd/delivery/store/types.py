"""Rows the delivery store takes and gives."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from webhookd.delivery.health import Change
from webhookd.delivery.job import Job
from webhookd.delivery.lifecycle import Transition


class NewEvent(NamedTuple):
    public_id: uuid.UUID
    tenant_id: int
    event_id: str  # the publisher's idempotency key
    event_type: str
    payload: Any
    channels: list[str] | None = None


class InsertedEvent(NamedTuple):
    id: int  # events.id
    tenant_id: int
    event_id: str


class NewDelivery(NamedTuple):
    public_id: uuid.UUID
    tenant_id: int
    event_pk: int  # events.id
    endpoint_id: int
    queue_key: int  # its place in the fair order (delivery/fairness.py)


class DeliveryRef(NamedTuple):
    id: int
    public_id: uuid.UUID
    event_pk: int
    endpoint_id: int
    waiting: bool = False  # created waiting (its endpoint held): not due, nothing to wake


class Route(NamedTuple):
    endpoint_id: int
    public_id: uuid.UUID
    event_types: list[str] | None
    filter: dict[str, Any] | None  # delivery/filters.py
    channels: list[str] | None = None  # only events in one of these (routing.in_channels)
    passes: bool = True  # closed and enabled when routed (else perhaps held: Health.passes)
    rate_limited: bool = False  # has a rate limit of its own (Endpoint.rate_limit)
    fifo: bool = False  # delivers in order, one at a time (Ordering.FIFO)


@dataclass(slots=True)
class RoutingTable:
    endpoints: dict[int, list[Route]]  # tenant id -> its active endpoints, in id order
    queue_head: int | None  # the smallest queue_key among live deliveries


class PutBack(NamedTuple):
    """A claimed delivery handed back unattempted (``lifecycle.put_back``)."""

    job: Job
    until: dt.datetime | None  # due again then; None: waiting
    reason: str  # circuit_open, disabled, fifo, rate_limit


@dataclass(slots=True)
class Claim:
    jobs: list[Job]
    held_back: set[int] = field(default_factory=set)  # endpoints with due rows left behind
    exhausted: bool = False  # no other due rows than those of the saturated endpoints
    put_back: list[PutBack] = field(default_factory=list)  # claimed, handed back at once
    changes: list[tuple[Job, Change]] = field(default_factory=list)  # probes started


@dataclass(slots=True)
class Recorded:
    transitions: list[Transition]
    changes: list[tuple[Job, Change]] = field(default_factory=list)  # endpoint health
    woken: list[int] = field(default_factory=list)  # deliveries made due (notices, turns)
