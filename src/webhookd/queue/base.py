"""The seam between publishing and delivering.

The database is the source of truth: a delivery row that is due will be delivered whether or
not anybody is told about it. A queue only makes that happen sooner: ``submit`` is called once
the transaction that made the rows due has committed (``db.after_commit``). The in-process
queue wakes the local dispatcher; a broker queue (Celery on RabbitMQ) tells distributed
workers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol

from webhookd.delivery.store import Claim


class Lessee(Protocol):
    """An engine in the publishing process that takes new deliveries as they are published:
    they are leased to it in the publish transaction and sent once it commits, with no
    claim transaction (``DeliveryService.enqueue_for_events``)."""

    owner: str  # the lease owner written on the rows

    @property
    def lease(self) -> dt.timedelta: ...

    def reserve(self, endpoint_ids: Sequence[int]) -> list[int]:
        """New deliveries to these endpoints (one entry each, in claim order): the indexes
        of those it takes, counted in flight from now on. Only what a claim would take
        next: nothing while other work is due or an endpoint is at its cap."""
        ...

    def claims_later(self, endpoint_id: int) -> bool:
        """The endpoint is at its cap with due rows left behind: the engine claims its rows
        as soon as it has room, so new ones need no wake-up."""
        ...

    def release(self, endpoint_ids: Sequence[int]) -> None:
        """Reserved deliveries that will not come (their transaction rolled back)."""

    def adopt(self, claim: Claim, endpoint_ids: Sequence[int]) -> None:
        """The publish committed: send ``claim``'s jobs; ``endpoint_ids`` are those of
        every reserved delivery (what the gate handed back gives its slot up)."""


class DeliveryQueue(Protocol):
    async def start(self) -> None: ...

    def submit(self, delivery_ids: Sequence[int], from_key: int | None = None) -> None:
        """New or re-scheduled deliveries were committed and are due now. Never blocks.
        ``from_key``: they are all new (a publish), none with a queue key below it."""

    def lessee(self) -> Lessee | None:
        """The engine of this process that takes new deliveries at publish (the embedded
        engine), or None: they wait for a claim."""
        ...

    async def stop(self) -> None: ...
