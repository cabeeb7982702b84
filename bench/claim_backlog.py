"""What one claim costs with a saturated endpoint's backlog at the head of the queue.

One tenant, endpoint S at its cap with ``N`` due deliveries waiting (a slow endpoint's
backlog) and endpoint H. Each round publishes one event to H and claims it the way the
engine does after a publish: searching past S's rows either from the head of the queue
(``search_from=None``, what every publish cost before) or from the publish's own queue keys
(``search_from``: the engine's floor, delivery/engine.py). Embedded SQLite; the claim's
wall time, median of the rounds.

    PYTHONPATH=src .venv/bin/python bench/claim_backlog.py 1000 10000 100000
"""

from __future__ import annotations

import asyncio
import datetime as dt
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from webhookd.config import Settings
from webhookd.db import Database, utcnow
from webhookd.delivery.fairness import FairClock
from webhookd.delivery.service import DeliveryService
from webhookd.delivery.store import create_store
from webhookd.event.schemas import EventCreate
from webhookd.event.service import publish_events
from webhookd.migrate import upgrade
from webhookd.models import Endpoint, Tenant

CAP = 10
ROUNDS = 21


class _Queue:
    """Keeps the ``from_key`` of the last publish (the engine is not running)."""

    from_key: int | None = None

    async def start(self) -> None: ...

    def submit(self, delivery_ids: Sequence[int], from_key: int | None = None) -> None:
        self.from_key = from_key

    async def stop(self) -> None: ...


async def _publish(
    db: Database, service: DeliveryService, tenant: int, kind: str, names: list[str]
) -> None:
    async with db.write() as session:
        batch = [(tenant, EventCreate(event_id=n, event_type=kind, payload={})) for n in names]
        await publish_events(session, deliveries=service, batch=batch)


async def measure(backlog: int) -> dict[str, Any]:
    settings = Settings(
        database_url=f"sqlite:///{tempfile.mkdtemp()}/claim.db",
        admin_key="bench-admin-key-0123456789",
        encryption_key="Zl8ZqL0bY2m7Y3c9d2k1bXhQeVRzV0x6cUhKc0F0b2c=",
    )
    await asyncio.to_thread(upgrade, settings)
    db = Database(settings)
    store = create_store("sqlite", decrypt=str)
    queue = _Queue()
    service = DeliveryService(store=store, queue=queue, clock=FairClock())
    async with db.write() as session:
        row = Tenant(name="t", email="t@example.com", rate_limit=10, api_key_hash="t",
                     api_key_prefix="whk_", secret_encrypted="x")  # fmt: skip
        session.add(row)
        await session.flush()
        slow = Endpoint(tenant_id=row.id, url="https://s.example/", event_types=["s"])
        fast = Endpoint(tenant_id=row.id, url="https://h.example/", event_types=["h"])
        session.add_all([slow, fast])
        await session.flush()
        tenant, slow_id = row.id, slow.id
    for start in range(0, backlog, 1000):  # S's backlog
        names = [f"s{n}" for n in range(start, min(backlog, start + 1000))]
        await _publish(db, service, tenant, "s", names)
    lease = dt.timedelta(minutes=10)
    timings: dict[str, list[float]] = {"from_head": [], "from_floor": []}
    for n in range(ROUNDS):
        for variant, times in timings.items():
            await _publish(db, service, tenant, "h", [f"h{variant}{n}"])
            floor = queue.from_key if variant == "from_floor" else None
            began = time.perf_counter()
            async with db.write_connection() as conn:
                claim = await store.claim_due(
                    conn,
                    owner="bench",
                    now=utcnow(),
                    lease=lease,
                    limit=100,
                    in_flight={slow_id: CAP},
                    endpoint_caps=lambda _: CAP,
                    search_past_saturated=True,
                    search_from=floor,
                    probe=False,
                )
            times.append(1000 * (time.perf_counter() - began))
            assert len(claim.jobs) == 1 and claim.exhausted, (variant, claim)
    await db.dispose()
    head, floor_ms = (statistics.median(t) for t in timings.values())
    return {
        "backlog": backlog,
        "claim_ms_from_head": round(head, 3),
        "claim_ms_from_floor": round(floor_ms, 3),
    }


if __name__ == "__main__":
    for size in [int(a) for a in sys.argv[1:]] or [1_000, 10_000, 100_000]:
        print(asyncio.run(measure(size)), flush=True)
