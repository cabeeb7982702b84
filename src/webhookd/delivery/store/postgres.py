"""The delivery store on PostgreSQL (asyncpg).

Publishing inserts a batch with one fixed statement per table that takes the batch as
arrays (``INSERT … SELECT … FROM unnest(…)``): prepared once per connection whatever the
batch size, with the values the whole batch shares (the timestamp, a new delivery's
starting state) sent once instead of once per row. The statements are generated from the
models' columns. Claims take rows ``FOR UPDATE SKIP LOCKED``: any number of workers share
the table without claiming a row twice.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import JSON, Table, TextClause, insert, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.base import Executable

from webhookd.delivery import lifecycle
from webhookd.delivery.lifecycle import Transition
from webhookd.delivery.store.common import (
    END_ATTEMPT,
    CoreStore,
    delivery_refs,
    end_attempt_params,
)
from webhookd.delivery.store.driver import driver_query, raw_connection
from webhookd.delivery.store.types import DeliveryRef, InsertedEvent, NewDelivery, NewEvent
from webhookd.models import Attempt, Delivery, Event

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def _sql_type(table: Table, column: str) -> str:
    return str(table.c[column].type.compile(dialect=_DIALECT))


def unnest_insert(
    table: Table,
    *,
    per_row: Sequence[str],
    shared: Sequence[str],
    returning: Sequence[str],
    on_conflict: Sequence[str] | None = None,
) -> TextClause:
    """``INSERT INTO table (per_row + shared) SELECT … FROM unnest(:per_row arrays)``:
    each ``per_row`` column is bound as an array (one element per row; JSON travels as
    text), each ``shared`` column as one value for every row."""
    arrays, selected = [], []
    for column in per_row:
        is_json = isinstance(table.c[column].type, JSON)
        element = "TEXT" if is_json else _sql_type(table, column)
        arrays.append(f"CAST(:{column} AS {element}[])")
        selected.append(f"u.{column}::json" if is_json else f"u.{column}")
    selected += [f"CAST(:{column} AS {_sql_type(table, column)})" for column in shared]
    sql = (
        f"INSERT INTO {table.name} ({', '.join([*per_row, *shared])}) "  # noqa: S608
        f"SELECT {', '.join(selected)} "
        f"FROM unnest({', '.join(arrays)}) AS u({', '.join(per_row)})"
    )
    if on_conflict:
        sql += f" ON CONFLICT ({', '.join(on_conflict)}) DO NOTHING"
    return text(sql + f" RETURNING {', '.join(returning)}")


_EVENT_TABLE: Table = Event.__table__  # type: ignore[assignment]
_DELIVERY_TABLE: Table = Delivery.__table__  # type: ignore[assignment]
_EVENT_ROW = (
    Event.public_id.key,
    Event.tenant_id.key,
    Event.event_id.key,
    Event.event_type.key,
    Event.payload.key,
    Event.channels.key,
)
_DELIVERY_ROW = (
    Delivery.public_id.key,
    Delivery.tenant_id.key,
    Delivery.event_id.key,
    Delivery.endpoint_id.key,
    Delivery.queue_key.key,
)
_DELIVERY_SHARED = tuple(lifecycle.new_delivery(dt.datetime.now(dt.UTC)))

INSERT_EVENTS = unnest_insert(
    _EVENT_TABLE,
    per_row=_EVENT_ROW,
    shared=(Event.created_at.key,),
    on_conflict=(Event.tenant_id.key, Event.event_id.key),
    returning=(Event.id.key, Event.tenant_id.key, Event.event_id.key),
)
INSERT_DELIVERIES = unnest_insert(
    _DELIVERY_TABLE,
    per_row=_DELIVERY_ROW,
    shared=_DELIVERY_SHARED,
    returning=(Delivery.id.key, Delivery.event_id.key, Delivery.endpoint_id.key),
)


def _columns(rows: Sequence[Sequence[Any]], names: Sequence[str]) -> dict[str, list[Any]]:
    """Rows as one array per column."""
    return {name: list(values) for name, values in zip(names, zip(*rows, strict=True), strict=True)}


def _plain(values: Mapping[str, Any]) -> dict[str, Any]:
    """Enum members as their values (asyncpg encodes str, not str subclasses, as text)."""
    return {k: v.value if isinstance(v, enum.Enum) else v for k, v in values.items()}


class PostgresStore(CoreStore):
    lock_rows = True

    async def _fetch(
        self, conn: AsyncConnection, statement: Executable, params: Mapping[str, Any]
    ) -> Sequence[Any]:
        query = driver_query(statement, conn.dialect)
        try:
            return query.rows(await _on_asyncpg(conn, "fetch", *query.numbered(params)))
        except _Closed:  # fails there too, handled as SQLAlchemy handles a lost connection
            return await super()._fetch(conn, statement, params)

    async def _execute(
        self, conn: AsyncConnection, statement: Executable, params: Mapping[str, Any]
    ) -> None:
        query = driver_query(statement, conn.dialect)
        try:
            await _on_asyncpg(conn, "execute", *query.numbered(params))
        except _Closed:
            await super()._execute(conn, statement, params)

    async def insert_events(
        self, conn: AsyncConnection, events: Sequence[NewEvent], now: dt.datetime
    ) -> list[InsertedEvent]:
        rows = [
            (
                e.public_id,
                e.tenant_id,
                e.event_id,
                e.event_type,
                orjson.dumps(e.payload).decode(),
                None if e.channels is None else orjson.dumps(e.channels).decode(),
            )
            for e in events
        ]
        params = {**_columns(rows, _EVENT_ROW), Event.created_at.key: now}
        return [InsertedEvent(*row) for row in await self._fetch(conn, INSERT_EVENTS, params)]

    async def _insert_deliveries(
        self, conn: AsyncConnection, rows: Sequence[NewDelivery], values: Mapping[str, Any]
    ) -> list[DeliveryRef]:
        params = {**_columns(rows, _DELIVERY_ROW), **_plain(values)}
        return delivery_refs(rows, await self._fetch(conn, INSERT_DELIVERIES, params))

    async def _write_attempt_ends(
        self, conn: AsyncConnection, transitions: Sequence[Transition], owner: str
    ) -> None:
        await conn.execute(END_ATTEMPT, [end_attempt_params(t, owner) for t in transitions])
        await conn.execute(
            _INSERT_ATTEMPTS, [lifecycle.attempt_row(t.outcome) for t in transitions]
        )


_INSERT_ATTEMPTS = insert(Attempt)


class _Closed(Exception):
    """The connection under the transaction is closed (the server went away)."""


async def _on_asyncpg(conn: AsyncConnection, method: str, sql: str, args: Sequence[Any]) -> Any:
    """``asyncpg.Connection.<method>(sql, *args)`` in the transaction of ``conn``: through
    SQLAlchemy's asyncpg adapter, which begins the transaction on the first statement (it
    may be this one) and serialises the statements of one connection. A database error is
    raised as SQLAlchemy raises it (``DBAPIError``: callers tell an unavailable database or
    a deadlock from it). A closed connection raises :class:`_Closed`: the caller lets
    SQLAlchemy's own execution meet it, which invalidates the pool as usual."""
    adapter: Any = (await raw_connection(conn)).dbapi_connection
    async with adapter._execute_mutex:
        try:
            if adapter._transaction is None:
                await adapter._start_transaction()
            return await getattr(adapter._connection, method)(sql, *args)
        except Exception as error:
            if adapter._connection.is_closed():
                raise _Closed from error
            try:
                if not isinstance(error, conn.dialect.loaded_dbapi.Error):
                    adapter._handle_exception(error)  # translates, and always raises
                raise
            except Exception as translated:
                raise DBAPIError.instance(
                    sql,
                    list(args),
                    translated,
                    conn.dialect.loaded_dbapi.Error,
                    dialect=conn.dialect,
                ) from error
