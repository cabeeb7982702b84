"""The embedded default: delivery workers run inside the API process."""

from __future__ import annotations

from collections.abc import Sequence

from webhookd.delivery.engine import DeliveryEngine


class InProcessQueue:
    """Hands committed deliveries to the local engine by waking its dispatcher."""

    def __init__(self, engine: DeliveryEngine) -> None:
        self.engine = engine

    async def start(self) -> None:
        await self.engine.start()

    def submit(self, delivery_ids: Sequence[int], from_key: int | None = None) -> None:
        self.engine.wake(from_key)

    def lessee(self) -> DeliveryEngine:
        return self.engine

    async def stop(self) -> None:
        await self.engine.stop()


class DatabaseOnlyQueue:
    """For an API process without local workers: the rows are in the database, and workers
    elsewhere find them when they poll."""

    async def start(self) -> None:
        return None

    def submit(self, delivery_ids: Sequence[int], from_key: int | None = None) -> None:
        return None

    def lessee(self) -> None:
        return None

    async def stop(self) -> None:
        return None
