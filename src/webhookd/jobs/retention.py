"""The retention purge: each tenant's events older than its ``retention_days`` (default
``WEBHOOKD_RETENTION_DAYS``) go, with their deliveries, attempts and dead-letter entries,
in transactions of at most ``WEBHOOKD_PURGE_BATCH_SIZE`` events; nothing of a live
delivery is touched (delivery/store/retention.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import structlog

from webhookd import metrics
from webhookd.config import Settings
from webhookd.db import Database, utcnow
from webhookd.delivery.store import Cutoff, DeliveryStore, Purged, create_store
from webhookd.jobs import repository

log = structlog.get_logger("webhookd.retention")


async def cutoffs(db: Database, settings: Settings, now: dt.datetime) -> list[Cutoff]:
    """One cutoff per retention in use (a tenant's own, or the default); none for a
    retention of 0 (keep everything)."""
    async with db.sessionmaker() as session:
        values = await repository.retention_values(session)
    found = []
    for days in sorted(set(values), key=lambda d: (d is not None, d or 0)):
        keep = settings.retention_days if days is None else days
        if keep > 0:
            found.append(Cutoff(days, now - dt.timedelta(days=keep)))
    return found


async def purge(
    db: Database,
    store: DeliveryStore,
    settings: Settings,
    *,
    now: dt.datetime,
    dry_run: bool = False,
) -> Purged:
    """Delete (``dry_run``: count) what is past its retention at ``now``; what went."""
    started = time.perf_counter()
    limits = await cutoffs(db, settings, now)
    total = Purged()
    if not limits:
        return total
    if dry_run:
        async with db.engine.connect() as conn:
            for cutoff in limits:
                total.add(await store.count_purgeable(conn, cutoff=cutoff))
        return total
    batch, pause = settings.purge_batch_size, settings.purge_batch_pause
    for cutoff in limits:
        after: int | None = 0
        while after is not None:
            async with db.write_connection() as conn:
                purged, after = await store.purge_batch(
                    conn, cutoff=cutoff, after=after, limit=batch
                )
            _count(purged, total)
            # A duty cycle: the batches of a large purge leave the database (and the
            # cores) to ingest and delivery in between.
            await asyncio.sleep(pause if after is not None else 0)
        async with db.write_connection() as conn:
            _count(Purged(jobs=await store.purge_jobs(conn, cutoff=cutoff)), total)
    if total.total:
        log.info(
            "retention.purged", seconds=round(time.perf_counter() - started, 3), **total.as_dict()
        )
    return total


def _count(purged: Purged, total: Purged) -> None:
    total.add(purged)
    for table, count in purged.as_dict().items():
        if count:
            metrics.PURGED_ROWS.labels(table=table).inc(count)


def _no_secrets(_: str) -> str:
    raise RuntimeError("the purge opens no secrets")


async def purge_now(settings: Settings, *, dry_run: bool) -> tuple[list[Cutoff], Purged]:
    """``webhookd purge``: one purge of the whole database, outside any server."""
    db = Database(settings)
    try:
        store = create_store(db.engine.dialect.name, decrypt=_no_secrets)
        now = utcnow()
        return await cutoffs(db, settings, now), await purge(
            db, store, settings, now=now, dry_run=dry_run
        )
    finally:
        await db.dispose()
