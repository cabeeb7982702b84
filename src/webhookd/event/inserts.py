"""The publish inserts: events (a conflict on (tenant_id, event_id) is a duplicate) and
their delivery rows, as multi-row statements with RETURNING.

PostgreSQL: SQLAlchemy Core statements built once at import. SQLite: the same inserts as
plain SQL on the driver connection (see below).
"""

from __future__ import annotations

import datetime as dt
import functools
import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from webhookd.db import driver_converter
from webhookd.event.schemas import EventCreate
from webhookd.models import Delivery, Event

# Statements built once: building them costs more than running them on SQLite.
_INSERT_EVENTS = (
    pg_insert(Event)
    .on_conflict_do_nothing(index_elements=["tenant_id", "event_id"])
    .returning(Event.id, Event.tenant_id, Event.event_id)
)
_INSERT_DELIVERIES = insert(Delivery).returning(
    Delivery.id, Delivery.event_id, Delivery.endpoint_id, sort_by_parameter_order=True
)


async def insert_events(
    conn: AsyncConnection, batch: Sequence[tuple[int, EventCreate]], now: dt.datetime
) -> Sequence[tuple[Any, ...]]:
    """Insert the batch's events; (id, tenant_id, event_id) of those that were new."""
    if conn.dialect.name == "sqlite":
        return await _sqlite_insert_events(conn, batch, now)
    rows = [
        {
            "tenant_id": tenant_id,
            "event_id": data.event_id,
            "event_type": data.event_type,
            "payload": data.payload,
            "created_at": now,
        }
        for tenant_id, data in batch
    ]
    return list(await conn.execute(_INSERT_EVENTS, rows))


async def insert_deliveries(
    conn: AsyncConnection, rows: list[dict[str, Any]]
) -> list[tuple[Any, ...]]:
    """Insert delivery rows; (id, event_id, endpoint_id) of each, in id order."""
    if conn.dialect.name == "sqlite":
        return sorted(await _sqlite_insert_deliveries(conn, rows))
    return sorted(await conn.execute(_INSERT_DELIVERIES, rows))


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
    conn: AsyncConnection, rows: list[dict[str, Any]]
) -> list[tuple[Any, ...]]:
    stamp = functools.cache(driver_converter(conn, Delivery.__table__.c.created_at))  # one `now`
    values = [
        (
            r["tenant_id"],
            r["event_id"],
            r["endpoint_id"],
            str(r["status"]),
            r["attempt_count"],
            r["cycle"],
            stamp(r["next_attempt_at"]),
            r["queue_key"],
            stamp(r["created_at"]),
            stamp(r["updated_at"]),
        )
        for r in rows
    ]
    suffix = "RETURNING id, event_id, endpoint_id"
    return await _sqlite_fetch(conn, "deliveries", _DELIVERY_COLUMNS, values, suffix)
