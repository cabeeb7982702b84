"""The publish inserts: events (a conflict on (tenant_id, event_id) is a duplicate) and
their delivery rows, one statement each with RETURNING.

PostgreSQL: one fixed statement per table that takes the batch as arrays (``unnest``), so it
is prepared once per connection whatever the batch size, and the values shared by the whole
batch (the timestamp, a new delivery's state) are sent once instead of once per row.
SQLite: the same inserts as plain SQL on the driver connection (see below).
"""

from __future__ import annotations

import datetime as dt
import functools
import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from webhookd.db import driver_converter
from webhookd.event.schemas import EventCreate
from webhookd.models import Delivery, DeliveryStatus, Event

# A new delivery row: (tenant_id, event pk, endpoint_id, queue_key); the rest of the row is
# the same for every new delivery (pending, due now).
NewDelivery = tuple[int, int, int, int]

_PG_INSERT_EVENTS = text(
    "INSERT INTO events (tenant_id, event_id, event_type, payload, created_at) "
    "SELECT t, e, ty, p::json, CAST(:now AS timestamptz) "
    "FROM unnest(CAST(:tenants AS bigint[]), CAST(:ids AS text[]), CAST(:types AS text[]), "
    "CAST(:payloads AS text[])) AS u(t, e, ty, p) "
    "ON CONFLICT (tenant_id, event_id) DO NOTHING RETURNING id, tenant_id, event_id"
)
_PG_INSERT_DELIVERIES = text(
    "INSERT INTO deliveries (tenant_id, event_id, endpoint_id, queue_key, status, "
    "attempt_count, cycle, next_attempt_at, created_at, updated_at) "
    "SELECT t, e, ep, q, :status, 0, 1, CAST(:now AS timestamptz), CAST(:now AS timestamptz), "
    "CAST(:now AS timestamptz) "
    "FROM unnest(CAST(:tenants AS bigint[]), CAST(:events AS bigint[]), "
    "CAST(:endpoints AS bigint[]), CAST(:keys AS bigint[])) AS u(t, e, ep, q) "
    "RETURNING id, event_id, endpoint_id"
)


async def insert_events(
    conn: AsyncConnection, batch: Sequence[tuple[int, EventCreate]], now: dt.datetime
) -> Sequence[tuple[Any, ...]]:
    """Insert the batch's events; (id, tenant_id, event_id) of those that were new."""
    if conn.dialect.name == "sqlite":
        return await _sqlite_insert_events(conn, batch, now)
    params = {
        "now": now,
        "tenants": [tenant_id for tenant_id, _ in batch],
        "ids": [data.event_id for _, data in batch],
        "types": [data.event_type for _, data in batch],
        "payloads": [orjson.dumps(data.payload).decode() for _, data in batch],
    }
    return [tuple(row) for row in await conn.execute(_PG_INSERT_EVENTS, params)]


async def insert_deliveries(
    conn: AsyncConnection, rows: list[NewDelivery], now: dt.datetime
) -> list[tuple[Any, ...]]:
    """Insert new deliveries, pending and due at ``now``; (id, event_id, endpoint_id) of
    each, in id order."""
    if conn.dialect.name == "sqlite":
        return sorted(await _sqlite_insert_deliveries(conn, rows, now))
    tenants, events, endpoints, keys = zip(*rows, strict=True)
    params = {
        "now": now,
        "status": DeliveryStatus.PENDING.value,
        "tenants": list(tenants),
        "events": list(events),
        "endpoints": list(endpoints),
        "keys": list(keys),
    }
    return sorted(tuple(row) for row in await conn.execute(_PG_INSERT_DELIVERIES, params))


# SQLite: the same inserts as plain SQL on the driver connection. SQLAlchemy's per-row
# parameter processing (bind processors, insertmanyvalues batching) cost more than SQLite
# itself; values go through the columns' own bind processors, so they are stored alike.
_SQLITE_MAX_ROWS = 2000  # per statement: 10 columns x 2,000 < SQLite's 32,766 variables
_EVENT_COLUMNS = ("tenant_id", "event_id", "event_type", "payload", "created_at")
_DELIVERY_COLUMNS = (
    "tenant_id",
    "event_id",
    "endpoint_id",
    "status",
    "attempt_count",
    "cycle",
    "next_attempt_at",
    "queue_key",
    "created_at",
    "updated_at",
)


@functools.lru_cache(maxsize=64)
def _sqlite_insert_sql(table: str, columns: tuple[str, ...], rows: int, suffix: str) -> str:
    one = "(" + ", ".join("?" * len(columns)) + ")"
    values = ", ".join([one] * rows)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values} {suffix}"  # noqa: S608


async def _sqlite_fetch(
    conn: AsyncConnection,
    table: str,
    columns: tuple[str, ...],
    rows: list[tuple[Any, ...]],
    suffix: str,
) -> list[tuple[Any, ...]]:
    driver = (await conn.get_raw_connection()).driver_connection
    out: list[tuple[Any, ...]] = []
    for start in range(0, len(rows), _SQLITE_MAX_ROWS):
        chunk = rows[start : start + _SQLITE_MAX_ROWS]
        sql = _sqlite_insert_sql(table, columns, len(chunk), suffix)
        try:
            out.extend(await driver.execute_fetchall(sql, [v for row in chunk for v in row]))
        except sqlite3.IntegrityError as exc:  # as SQLAlchemy would raise it (the batcher)
            raise IntegrityError(f"INSERT INTO {table}", None, exc) from exc
    return out


async def _sqlite_insert_events(
    conn: AsyncConnection, batch: Sequence[tuple[int, EventCreate]], now: dt.datetime
) -> list[tuple[Any, ...]]:
    stamp = driver_converter(conn, Event.__table__.c.created_at)(now)
    payload = driver_converter(conn, Event.__table__.c.payload)
    rows = [(t, d.event_id, d.event_type, payload(d.payload), stamp) for t, d in batch]
    suffix = "ON CONFLICT (tenant_id, event_id) DO NOTHING RETURNING id, tenant_id, event_id"
    return await _sqlite_fetch(conn, "events", _EVENT_COLUMNS, rows, suffix)


async def _sqlite_insert_deliveries(
    conn: AsyncConnection, rows: list[NewDelivery], now: dt.datetime
) -> list[tuple[Any, ...]]:
    stamp = driver_converter(conn, Delivery.__table__.c.created_at)(now)
    pending = DeliveryStatus.PENDING.value
    values = [(t, e, ep, pending, 0, 1, stamp, q, stamp, stamp) for t, e, ep, q in rows]
    suffix = "RETURNING id, event_id, endpoint_id"
    return await _sqlite_fetch(conn, "deliveries", _DELIVERY_COLUMNS, values, suffix)
