"""The seam between publishing and delivering.

The database is the source of truth: a delivery row that is due will be delivered whether or
not anybody is told about it. A queue only makes that happen sooner: ``submit`` is called once
the transaction that made the rows due has committed (``db.after_commit``). The in-process
queue wakes the local dispatcher; a broker queue (Celery on RabbitMQ) tells distributed
workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class DeliveryQueue(Protocol):
    async def start(self) -> None: ...

    def submit(self, delivery_ids: Sequence[int], from_key: int | None = None) -> None:
        """New or re-scheduled deliveries were committed and are due now. Never blocks.
        ``from_key``: they are all new (a publish), none with a queue key below it."""

    async def stop(self) -> None: ...
