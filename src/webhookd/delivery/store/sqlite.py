"""The delivery store on SQLite.

The inserts of a publish and the writes of attempt ends run as plain SQL on the driver
connection (multi-row ``INSERT … RETURNING`` and ``executemany``): SQLAlchemy's per-row
parameter processing cost more than SQLite itself. The SQL is generated from the models
(or compiled from the statements the PostgreSQL store runs), and every value goes through
its column's own bind processor, so rows are stored exactly as SQLAlchemy stores them.
"""

from __future__ import annotations

import datetime as dt
import functools
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.dml import UpdateBase

from webhookd.delivery import lifecycle
from webhookd.delivery.lifecycle import Transition
from webhookd.delivery.store.common import (
    END_ATTEMPT,
    CoreStore,
    delivery_refs,
    end_attempt_params,
)
from webhookd.delivery.store.driver import (
    Convert,
    bind_converter,
    driver_query,
    identity,
    raw_connection,
)
from webhookd.delivery.store.types import DeliveryRef, InsertedEvent, NewDelivery, NewEvent
from webhookd.models import Attempt, Delivery, Event

_MAX_VARIABLES = 32_766  # SQLite's limit of bound values per statement


class DriverInsert:
    """``INSERT INTO table (per-row columns, shared columns) VALUES (…), (…) [suffix]`` for a
    batch of row tuples; the shared values (the same for every row) are converted once."""

    def __init__(
        self, table: Table, per_row: Sequence[str], shared: Sequence[str], suffix: str
    ) -> None:
        self.table = table
        self.per_row = tuple(per_row)
        self.shared = tuple(shared)
        self.columns = self.per_row + self.shared
        self.suffix = suffix
        self._converters: list[tuple[int, Convert]] | None = None  # per-row, not identity
        self._shared: list[Convert] = []

    def _sql(self, rows: int) -> str:
        one = "(" + ", ".join("?" * len(self.columns)) + ")"
        return (
            f"INSERT INTO {self.table.name} ({', '.join(self.columns)}) "  # noqa: S608
            f"VALUES {', '.join([one] * rows)} {self.suffix}"
        )

    async def run(
        self, conn: AsyncConnection, rows: Sequence[Sequence[Any]], shared: Mapping[str, Any]
    ) -> list[Any]:
        if self._converters is None:
            dialect = conn.dialect
            per_row = (bind_converter(self.table.c[c].type, dialect) for c in self.per_row)
            self._converters = [(i, f) for i, f in enumerate(per_row) if f is not identity]
            self._shared = [bind_converter(self.table.c[c].type, dialect) for c in self.shared]
        converters = self._converters
        common = [convert(shared[c]) for convert, c in zip(self._shared, self.shared, strict=True)]
        driver = await _driver(conn)
        out: list[Any] = []
        per_statement = _MAX_VARIABLES // len(self.columns)
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            values: list[Any] = []
            for row in chunk:
                if converters:
                    row = list(row)
                    for i, convert in converters:
                        row[i] = convert(row[i])
                values.extend(row)
                values.extend(common)
            try:
                out.extend(await driver.execute_fetchall(_cached_sql(self, len(chunk)), values))
            except sqlite3.IntegrityError as exc:  # as SQLAlchemy would raise it (the batcher)
                raise IntegrityError(f"INSERT INTO {self.table.name}", None, exc) from exc
        return out


@functools.lru_cache(maxsize=128)
def _cached_sql(insert: DriverInsert, rows: int) -> str:
    return insert._sql(rows)


class DriverStatement:
    """A Core statement compiled once for SQLite and run with ``executemany`` on the driver,
    each parameter converted by its own bind processor."""

    def __init__(self, statement: UpdateBase, column_keys: Sequence[str] | None = None) -> None:
        self.statement = statement
        self.column_keys = list(column_keys) if column_keys is not None else None
        self._compiled: tuple[str, list[tuple[str, Any, Convert]]] | None = None

    def _compile(self, dialect: Dialect) -> tuple[str, list[tuple[str, Any, Convert]]]:
        compiled = self.statement.compile(dialect=dialect, column_keys=self.column_keys)
        order = [
            (name, compiled.params.get(name), bind_converter(compiled.binds[name].type, dialect))
            for name in compiled.positiontup or ()
        ]
        return str(compiled), order

    async def run(self, conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
        if self._compiled is None:
            self._compiled = self._compile(conn.dialect)
        sql, order = self._compiled
        params = [
            [
                (row.get(name, default) if process is identity else process(row.get(name, default)))
                for name, default, process in order
            ]
            for row in rows
        ]
        await (await _driver(conn)).executemany(sql, params)


async def _driver(conn: AsyncConnection) -> Any:
    return (await raw_connection(conn)).driver_connection


_EVENT_TABLE: Table = Event.__table__  # type: ignore[assignment]
_DELIVERY_TABLE: Table = Delivery.__table__  # type: ignore[assignment]
_ATTEMPT_TABLE: Table = Attempt.__table__  # type: ignore[assignment]
_ATTEMPT_COLUMNS = tuple(c.key for c in _ATTEMPT_TABLE.c if not c.primary_key)

_INSERT_EVENTS = DriverInsert(
    _EVENT_TABLE,
    (
        Event.public_id.key,
        Event.tenant_id.key,
        Event.event_id.key,
        Event.event_type.key,
        Event.payload.key,
        Event.channels.key,
    ),
    (Event.created_at.key,),
    f"ON CONFLICT ({Event.tenant_id.key}, {Event.event_id.key}) DO NOTHING "
    f"RETURNING {Event.id.key}, {Event.tenant_id.key}, {Event.event_id.key}",
)
_NEW_DELIVERY = tuple(lifecycle.new_delivery(dt.datetime.now(dt.UTC)))
_INSERT_DELIVERIES = DriverInsert(
    _DELIVERY_TABLE,
    (
        Delivery.public_id.key,
        Delivery.tenant_id.key,
        Delivery.event_id.key,
        Delivery.endpoint_id.key,
        Delivery.queue_key.key,
    ),
    _NEW_DELIVERY,
    f"RETURNING {Delivery.id.key}, {Delivery.event_id.key}, {Delivery.endpoint_id.key}",
)
_END_ATTEMPT = DriverStatement(END_ATTEMPT)
_INSERT_ATTEMPTS = DriverStatement(_ATTEMPT_TABLE.insert(), column_keys=_ATTEMPT_COLUMNS)


class SQLiteStore(CoreStore):
    lock_rows = False  # one writer at a time: the write transaction is the lock

    async def _fetch(
        self, conn: AsyncConnection, statement: Executable, params: Mapping[str, Any]
    ) -> Sequence[Any]:
        query = driver_query(statement, conn.dialect)
        return query.rows(await (await _driver(conn)).execute_fetchall(*query.qmark(params)))

    async def _execute(
        self, conn: AsyncConnection, statement: Executable, params: Mapping[str, Any]
    ) -> None:
        query = driver_query(statement, conn.dialect)
        await (await _driver(conn)).execute(*query.qmark(params))

    async def insert_events(
        self, conn: AsyncConnection, events: Sequence[NewEvent], now: dt.datetime
    ) -> list[InsertedEvent]:
        inserted = await _INSERT_EVENTS.run(conn, events, {Event.created_at.key: now})
        return [InsertedEvent(*row) for row in inserted]

    async def _insert_deliveries(
        self, conn: AsyncConnection, rows: Sequence[NewDelivery], values: Mapping[str, Any]
    ) -> list[DeliveryRef]:
        inserted = await _INSERT_DELIVERIES.run(conn, rows, values)
        return delivery_refs(rows, inserted)

    async def _write_attempt_ends(
        self, conn: AsyncConnection, transitions: Sequence[Transition], owner: str
    ) -> None:
        await _END_ATTEMPT.run(conn, [end_attempt_params(t, owner) for t in transitions])
        await _INSERT_ATTEMPTS.run(conn, [lifecycle.attempt_row(t.outcome) for t in transitions])
