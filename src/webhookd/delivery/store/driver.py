"""Core statements run on the database driver itself, bypassing SQLAlchemy's execution.

SQLAlchemy's execution of one small statement costs about 0.1 ms of CPU on SQLite and
0.2 ms on PostgreSQL (execution context, parameter and result processing, the greenlet
hop), several times the database's own work on the engine's claims and outcome writes,
which run once or more per delivery. A :class:`DriverQuery` compiles the statement once for
the connection's dialect and, per call, binds each parameter through its type's bind
processor (an expanding ``IN`` list element by element) and each result column through its
type's result processor, so that what is stored and read is exactly what SQLAlchemy would
store and read (``tests/test_driver_queries.py`` compares both, value and type). The stores
run the SQL on their driver (sqlite.py, postgres.py), inside the same transaction.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Float, Numeric, Select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.types import TypeEngine

from webhookd.db import UTCDateTime

Convert = Callable[[Any], Any]


def bind_converter(type_: TypeEngine[Any], dialect: Dialect) -> Convert:
    """The type's own conversion to what the driver takes (e.g. UTC text for datetimes)."""
    process: Convert | None = type_.dialect_impl(dialect).bind_processor(dialect)
    if process is None:
        return identity
    if isinstance(type_, UTCDateTime):  # most rows of a batch share one timestamp
        return functools.lru_cache(maxsize=64)(process)
    return process


def identity(value: Any) -> Any:
    return value


def _result_processor(type_: TypeEngine[Any], dialect: Dialect) -> Convert | None:
    """The type's conversion of what the driver returns. asyncpg's numeric processors
    depend on the column's PostgreSQL type (its OID in a result's description), which
    follows from the SQLAlchemy type: ``FLOAT`` is float8, any other numeric ``NUMERIC``."""
    coltype = None
    if isinstance(type_, Float):
        coltype = 701  # float8
    elif isinstance(type_, Numeric):
        coltype = 1700  # numeric
    return type_.dialect_impl(dialect).result_processor(dialect, coltype)


@dataclasses.dataclass(frozen=True)
class _Param:
    name: str
    default: Any
    process: Convert
    expanding: bool


class DriverQuery:
    """One statement compiled for one dialect: a select (rows as named tuples, each value
    through its column's result processor), a write, or a textual statement (rows as plain
    tuples of what the driver returns)."""

    def __init__(self, statement: Executable, dialect: Dialect) -> None:
        assert isinstance(statement, ClauseElement)
        self.statement = statement
        self.dialect = dialect
        self.compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        binds = self.compiled.binds
        self.params = [
            _Param(
                name,
                self.compiled.params.get(name),
                bind_converter(binds[name].type, dialect),
                binds[name].expanding,
            )
            for name in self.compiled.positiontup or ()
        ]
        self._by_name = {p.name: p for p in self.params}
        self._expanded: dict[tuple[int, ...], str] = {}  # qmark's SQL by shape
        self._numbered: dict[tuple[int, ...], tuple[str, list[tuple[int, int]]] | None] = {}
        self.row: Any = None  # the named tuple of a result row (a select)
        self.processors: list[tuple[int, Convert]] = []  # (column index, result processor)
        if isinstance(statement, Select):
            columns = statement.selected_columns
            names = [str(column.key) for column in columns]  # unnamed: _<position>
            self.row = collections.namedtuple("Row", names, rename=True)  # type: ignore[misc]
            self.processors = [
                (i, process)
                for i, column in enumerate(columns)
                if (process := _result_processor(column.type, dialect))
            ]

    def _value(self, param: _Param, values: Mapping[str, Any]) -> Any:
        value = values.get(param.name, param.default)
        if param.expanding:
            if not value:
                raise ValueError(f"{param.name}: an empty IN list")
            return value if param.process is identity else [param.process(v) for v in value]
        return value if param.process is identity else param.process(value)

    def qmark(self, values: Mapping[str, Any]) -> tuple[str, list[Any]]:
        """SQL with ``?`` placeholders (SQLite), each expanding list as that many, and its
        parameters in order."""
        out: list[Any] = []
        lengths: list[int] = []
        for p in self.params:
            value = self._value(p, values)
            if p.expanding:
                lengths.append(len(value))
                out.extend(value)
            else:
                out.append(value)
        key = tuple(lengths)
        sql = self._expanded.get(key)
        if sql is None:
            sql = self.compiled.string
            for p, n in zip((p for p in self.params if p.expanding), lengths, strict=True):
                sql = sql.replace(f"__[POSTCOMPILE_{p.name}]", ", ".join("?" * n), 1)
            if len(self._expanded) < 256:
                self._expanded[key] = sql
        return sql, out

    def numbered(self, values: Mapping[str, Any]) -> tuple[str, list[Any]]:
        """SQL with ``$n`` placeholders (asyncpg), expanded by SQLAlchemy's compiler as its
        own execution would, and its parameters in order.

        The compiler's expansion (~10 µs a call) runs once per shape (the length of each
        expanding list): a run on stand-in values gives the shape's SQL and where each
        value goes (the compiler numbers the plain parameters before the expanded lists'
        elements), which later calls of that shape reuse."""
        converted = [self._value(p, values) for p in self.params]
        key = tuple(len(v) for p, v in zip(self.params, converted, strict=True) if p.expanding)
        if key in self._numbered:
            shape = self._numbered[key]
        else:
            shape = self._numbered_shape(key)
            if len(self._numbered) < 256:
                self._numbered[key] = shape
        if shape is None:  # values rendered into the SQL itself: expand each time
            named = {p.name: v for p, v in zip(self.params, converted, strict=True)}
            expanded = self.compiled.construct_expanded_state(named)
            return expanded.statement, list(expanded.positional_parameters)
        sql, layout = shape
        return sql, [converted[i] if n < 0 else converted[i][n] for i, n in layout]

    def _numbered_shape(self, key: tuple[int, ...]) -> tuple[str, list[tuple[int, int]]] | None:
        """The SQL of one shape and, per ``$n``, (parameter index, element index or -1);
        None if the compiler writes some value into the SQL (``literal_execute``)."""
        lengths = iter(key)
        slots: dict[int, tuple[int, int]] = {}
        stand_ins: dict[str, Any] = {}
        for i, p in enumerate(self.params):
            if p.expanding:
                elements = [_StandIn() for _ in range(next(lengths))]
                slots.update({id(e): (i, n) for n, e in enumerate(elements)})
                stand_ins[p.name] = elements
            else:
                stand_ins[p.name] = element = _StandIn()
                slots[id(element)] = (i, -1)
        try:
            expanded = self.compiled.construct_expanded_state(stand_ins)
        except Exception:  # a value the compiler itself had to render
            return None
        layout = [slots.get(id(v)) for v in expanded.positional_parameters]
        if len(layout) != len(slots) or None in layout:
            return None
        return expanded.statement, cast(list[tuple[int, int]], layout)

    def rows(self, fetched: Sequence[Sequence[Any]]) -> list[Any]:
        """The driver's rows as named tuples of the values SQLAlchemy would give."""
        row, processors = self.row, self.processors
        if row is None:  # a textual statement (e.g. INSERT … RETURNING): plain tuples
            return [tuple(r) for r in fetched]
        if not processors:
            return [row._make(r) for r in fetched]
        out = []
        for r in fetched:
            values = list(r)
            for i, process in processors:
                values[i] = process(values[i])
            out.append(row._make(values))
        return out


class _StandIn:
    """A value that only stands for its place (``DriverQuery.numbered``)."""


_QUERIES: dict[tuple[int, int], DriverQuery] = {}


def driver_query(statement: Executable, dialect: Dialect) -> DriverQuery:
    """The statement's driver query for this dialect, made once (the stores' statements
    live as long as the process: module constants and cached builders)."""
    key = (id(statement), id(dialect))
    query = _QUERIES.get(key)
    if query is None or query.statement is not statement or query.dialect is not dialect:
        if len(_QUERIES) > 1000:  # engines come and go (tests): forget the old ones
            _QUERIES.clear()
        query = _QUERIES[key] = DriverQuery(statement, dialect)
    return query


async def raw_connection(conn: AsyncConnection) -> PoolProxiedConnection:
    """The pooled DBAPI connection under ``conn``. Within a transaction it is at hand;
    SQLAlchemy's ``get_raw_connection()`` would hop through a greenlet to fetch it."""
    sync = conn.sync_connection
    if sync is not None and sync.in_transaction() and not sync.invalidated:
        return sync.connection
    return await conn.get_raw_connection()
