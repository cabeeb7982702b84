"""A claimed delivery (:class:`Job`) and what one HTTP try of it gave (:class:`Outcome`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from webhookd.delivery.health import HEALTHY, Health
from webhookd.models import DeliveryStatus


@dataclass(slots=True)
class Job:
    """A claimed delivery with everything needed to send it."""

    delivery_id: int
    tenant_id: int
    endpoint_id: int
    event_pk: int  # events.id
    url: str
    secrets: tuple[str, ...]  # current signing secret first; the previous one during rotation
    event_id: str
    event_type: str
    payload: Any
    created_at: dt.datetime
    attempt_number: int  # 1-based, within the current cycle
    cycle: int
    queue_key: int = 0  # its place in the claim order (see delivery/fairness.py)
    # ``webhook-id``: the delivery's public id (dlv_…), the same on every retry of it and
    # never given to another delivery, in any database.
    message_id: str = ""
    tenant_ref: str = ""  # the tenant's public id (tnt_…), for logs and metrics
    endpoint_ref: str = ""  # the endpoint's (ep_…)
    # The endpoint's policy fields (None: the default) and health when claimed.
    retry_schedule: tuple[float, ...] | None = None
    rate_limit: float | None = None  # deliveries per second
    headers: dict[str, str] | None = None  # custom headers, sent before webhookd's own
    fifo: bool = False
    operational: bool = False  # to the tenant's operational webhook
    svix: bool = False  # the tenant's delivery format is Svix's (models.DeliveryFormat)
    health: Health = field(default=HEALTHY)

    @property
    def waiting_status(self) -> DeliveryStatus:
        """The status of this delivery when handed back unattempted."""
        return DeliveryStatus.PENDING if self.attempt_number == 1 else DeliveryStatus.RETRYING


@dataclass(slots=True)
class Outcome:
    job: Job
    started_at: dt.datetime
    duration_ms: float
    succeeded: bool
    response_status: int | None = None
    response_body: str | None = None
    error_kind: str | None = None  # timeout, connection, tls, dns, refused_target, http_status
    error_message: str | None = None
    retry_after: float | None = None

    @property
    def summary(self) -> str:
        if self.succeeded:
            return f"HTTP {self.response_status}"
        return f"{self.error_kind}: {self.error_message}"
