"""Rows the delivery store takes and gives."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from webhookd.delivery.job import Job


class NewEvent(NamedTuple):
    public_id: uuid.UUID
    tenant_id: int
    event_id: str  # the publisher's idempotency key
    event_type: str
    payload: Any


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


class Route(NamedTuple):
    endpoint_id: int
    public_id: uuid.UUID
    event_types: list[str] | None


@dataclass(slots=True)
class RoutingTable:
    endpoints: dict[int, list[Route]]  # tenant id -> its active endpoints, in id order
    queue_head: int | None  # the smallest queue_key among live deliveries


@dataclass(slots=True)
class Claim:
    jobs: list[Job]
    held_back: set[int] = field(default_factory=set)  # endpoints with due rows left behind
    exhausted: bool = False  # no other due rows than those of the saturated endpoints
