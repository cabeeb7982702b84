"""CPU of the group commit alone: ``PublishBatcher`` batches of a given size, no HTTP.

One tenant with one endpoint on a fresh database (SQLite file or a scratch PostgreSQL
database), the API's publish path without the server around it (``DatabaseOnlyQueue``: the
deliveries are stored, nothing delivers them), on uvloop as ``webhookd serve`` runs. For
each batch size, ``--batches`` batches are published one after the other (each batch's
publishes handed to the batcher together, so that they commit as one) after as many for
warm-up; printed: the process's CPU per batch and per event, and the wall time per batch.
The fixed cost of a batch (its transaction: round trips, session) is what a batch of one
costs beyond the per-event slope.

    .venv/bin/python -m bench.publish_batch --db postgresql --sizes 1,32 --batches 1500
    PYTHONPATH=/tmp/before/src .venv/bin/python -m bench.publish_batch ...   # another src/
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import uvloop
from sqlalchemy import func, select

from bench.services import fresh_postgres
from webhookd.config import Settings
from webhookd.db import Database
from webhookd.delivery.fairness import FairClock
from webhookd.delivery.service import DeliveryService
from webhookd.delivery.store import create_store
from webhookd.event.batcher import PublishBatcher
from webhookd.event.schemas import EventCreate
from webhookd.migrate import upgrade
from webhookd.models import Delivery, Endpoint, Tenant
from webhookd.queue.inprocess import DatabaseOnlyQueue

PAYLOAD = {"n": 1, "user": {"id": "u_123", "email": "a@example.com"}}


@contextlib.contextmanager
def database(backend: str) -> Iterator[str]:
    if backend == "postgresql":
        with fresh_postgres() as url:
            yield url
        return
    with tempfile.TemporaryDirectory() as tmp:
        yield f"sqlite:///{Path(tmp) / 'publish.db'}"


async def measure(url: str, sizes: list[int], batches: int) -> dict[str, object]:
    """Per size: CPU ms a batch, µs an event, wall ms a batch; and the deliveries stored."""
    settings = Settings(database_url=url, log_level="WARNING")
    db = Database(settings)
    async with db.write() as session:
        tenant = Tenant(
            name="bench",
            email="bench@example.com",
            rate_limit=1_000_000,
            api_key_hash="bench",
            api_key_prefix="whk_",
            secret_encrypted="x",
        )
        session.add(tenant)
        await session.flush()
        session.add(Endpoint(tenant_id=tenant.id, url="https://bench.example/hook"))
    store = create_store(db.engine.dialect.name, decrypt=str)
    deliveries = DeliveryService(store=store, queue=DatabaseOnlyQueue(), clock=FairClock())
    batcher = PublishBatcher(db, deliveries)
    await batcher.start()
    rows: list[dict[str, float]] = []
    try:
        for size in sizes:
            for phase in ("warm-up", "measured"):
                cpu, wall = time.process_time(), time.perf_counter()
                for b in range(batches):
                    await asyncio.gather(
                        *(
                            batcher.publish(
                                tenant.id,
                                EventCreate(
                                    event_id=f"{phase}-{size}-{b}-{n}",
                                    event_type="user.created",
                                    payload=PAYLOAD,
                                ),
                            )
                            for n in range(size)
                        )
                    )
                cpu = (time.process_time() - cpu) / batches
                wall = (time.perf_counter() - wall) / batches
            rows.append({"size": size, "cpu_ms": cpu * 1e3, "cpu_us_per_event": cpu / size * 1e6})
            print(
                f"batch {size:4}: CPU {cpu * 1e3:.3f} ms a batch, {cpu / size * 1e6:6.1f} µs "
                f"an event; wall {wall * 1e3:.2f} ms a batch",
                flush=True,
            )
        async with db.read() as session:
            stored = await session.scalar(select(func.count()).select_from(Delivery))
    finally:
        await batcher.stop()
        await db.dispose()
    return {"batches": rows, "deliveries_stored": stored}


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="postgresql")
    parser.add_argument("--sizes", default="1,16,32,64", help="batch sizes, comma-separated")
    parser.add_argument("--batches", type=int, default=1000)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    with database(args.db) as url:
        upgrade(Settings(database_url=url, log_level="WARNING"))
        return uvloop.run(measure(url, sizes, args.batches))


if __name__ == "__main__":
    main()
