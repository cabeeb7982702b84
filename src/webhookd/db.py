"""Database: declarative base, engine and session factories, the write-transaction boundary.

SQLite allows one writer at a time. Within a process, write transactions queue on an
asyncio lock (cheaper and fairer than SQLite's busy-wait); ``BEGIN IMMEDIATE`` plus a
busy timeout covers other processes on the same file. On PostgreSQL both are no-ops.
SQLite calls run inline on the event loop (see :class:`InlineSQLiteConnection`).

Work that must follow a commit (waking the delivery engine, forgetting cached keys) is
registered with :func:`after_commit` on the write session and run by :meth:`Database.write`
once the commit went through; a rolled-back transaction runs none of it.

No wait on the network (DNS, an HTTP delivery, Redis, the broker) may happen inside a
write transaction: on SQLite it would hold the process-wide write lock, on PostgreSQL a
pooled connection and row locks, while the network answers. Each such wait calls
:func:`network_wait` first, which refuses it inside a write transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import functools
import sqlite3
import urllib.parse
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from typing import Any, TypeVar

import aiosqlite
import orjson
from sqlalchemy import DateTime, MetaData, event, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from webhookd.config import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


WRITE_OPTION = "webhookd_write"
_AFTER_COMMIT = "webhookd_after_commit"
_AFTER_ROLLBACK = "webhookd_after_rollback"
# True in a task (and the tasks it starts) while it is inside a write transaction.
_IN_WRITE: contextvars.ContextVar[bool] = contextvars.ContextVar("webhookd_in_write", default=False)


class NetworkWaitInTransaction(RuntimeError):
    """A bug: something waited on the network inside a write transaction."""


def network_wait(what: str) -> None:
    """Called before every wait on the network; raises inside a write transaction."""
    if _IN_WRITE.get():
        raise NetworkWaitInTransaction(f"{what} inside a write transaction")


@contextlib.contextmanager
def _writing() -> Generator[None, None, None]:
    token = _IN_WRITE.set(True)
    try:
        yield
    finally:
        _IN_WRITE.reset(token)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def driver_converter(conn: AsyncConnection, column: Any) -> Any:
    """The column's own conversion to what the driver gets (e.g. UTC text for datetimes on
    SQLite), for plain SQL on the driver connection that must store values alike."""
    return column.type.dialect_impl(conn.dialect).bind_processor(conn.dialect) or (lambda v: v)


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class InlineSQLiteConnection(aiosqlite.Connection):
    """aiosqlite's connection, minus its thread: each call runs on the event loop itself.

    aiosqlite hands every call (cursor, execute, fetch, close...) to a worker thread, and
    SQLAlchemy makes many such calls per query. SQLite calls on a WAL database take
    microseconds and, within this process, writers never wait on each other (the write lock
    in :class:`Database`), so running them inline is cheaper than any hand-off.
    """

    async def _execute(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if not self._running or self._connection is None:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)

    async def _connect(self) -> InlineSQLiteConnection:
        if self._connection is None:
            self._connection = self._connector()
        return self

    def __await__(self) -> Generator[Any, None, InlineSQLiteConnection]:
        return self._connect().__await__()

    def begin_now(self, *, immediate: bool) -> None:
        """``BEGIN [IMMEDIATE]`` at once, on the caller's stack (the transaction's begin
        event): through SQLAlchemy's execution it cost several times SQLite's own work."""
        if not self._running or self._connection is None:
            raise ValueError("Connection closed")
        sql = "BEGIN IMMEDIATE" if immediate else "BEGIN"
        try:
            self._connection.execute(sql)
        except sqlite3.Error as exc:  # as SQLAlchemy would raise it
            raise OperationalError(sql, None, exc) from exc

    def stop(self) -> None:
        self._running = False
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def close(self) -> None:
        self.stop()


SQLITE_PRAGMAS = (
    "journal_mode=WAL",
    "synchronous=NORMAL",
    "foreign_keys=ON",
    "busy_timeout=30000",
    "temp_store=MEMORY",
    "cache_size=-20000",
)


def _sqlite_connector(path: str, *, autocheckpoint: bool = True) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; the begin event below emits BEGIN.
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    for pragma in SQLITE_PRAGMAS:
        conn.execute(f"PRAGMA {pragma}")
    if not autocheckpoint:
        conn.execute("PRAGMA wal_autocheckpoint=0")
    return conn


class WalCheckpointer:
    """Checkpoints an SQLite WAL off the event loop.

    By default SQLite checkpoints inside the commit that takes the WAL past 1,000 pages:
    that commit copies the pages into the database file and syncs it, and since the
    connections run inline (:class:`InlineSQLiteConnection`) the whole process waits
    (5-100 ms here, about one commit in a hundred under a steady stream of writes: the
    tail of every delivery's latency). The connections of a :class:`Database` turn that
    off; this task runs a ``PASSIVE`` checkpoint on a thread every ``interval`` seconds
    instead (``sqlite3`` releases the GIL while SQLite works, and a passive checkpoint
    takes no lock that writers or readers wait on).

    A writer starts the WAL over from its beginning only if a checkpoint copied all of it
    before the writer's transaction began; with commits arriving during every checkpoint
    that may never happen, and the WAL would grow without end. So when the WAL holds more
    than ``RESTART_PAGES`` frames, a second checkpoint follows at once under the
    process's write lock (the writers wait for it on the event loop, not on SQLite's busy
    handler): it copies the few frames committed during the first, and the next commit
    starts the WAL over.
    """

    INTERVAL = 0.5  # seconds between checkpoints
    RESTART_PAGES = 1000  # SQLite's own automatic checkpoint threshold

    def __init__(self, path: str, write_lock: asyncio.Lock, interval: float | None = None) -> None:
        # mode=rw: never create the file (not migrated yet, or removed since).
        self._uri = f"file:{urllib.parse.quote(path)}?mode=rw"
        self._write_lock = write_lock
        self._interval = self.INTERVAL if interval is None else interval
        self._conn: sqlite3.Connection | None = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.checkpoints = 0  # completed, with the write lock or without

    def start(self) -> None:
        """Start on the running loop (once)."""
        if self._task is None and not self._stopping.is_set():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="wal-checkpoint")

    async def _run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)
                return
            try:
                if await asyncio.to_thread(self._checkpoint) >= self.RESTART_PAGES:
                    async with self._write_lock:  # the frames committed meanwhile
                        await asyncio.to_thread(self._checkpoint)
            except sqlite3.Error:  # no file yet, or it went away: try again later
                self._close()

    def _checkpoint(self) -> int:
        """One passive checkpoint; the number of frames in the WAL."""
        if self._conn is None:
            self._conn = sqlite3.connect(
                self._uri, uri=True, isolation_level=None, check_same_thread=False
            )
        ((_, frames, _),) = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        self.checkpoints += 1
        return int(frames)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def stop(self) -> None:
        """Stop the task (after the checkpoint it may be running) and close its connection."""
        self._stopping.set()
        if self._task is not None:
            await self._task
        self._close()


def create_engine(settings: Settings, *, background_checkpoints: bool = False) -> AsyncEngine:
    url = settings.database_url
    json_options: dict[str, Any] = {
        "json_serializer": _json_dumps,
        "json_deserializer": orjson.loads,
    }
    if not settings.is_sqlite:
        return create_async_engine(
            url,
            pool_size=settings.db_pool_size,
            max_overflow=10,
            # No ping per checkout (a round trip each time). A connection that died with the
            # server fails its first statement instead; SQLAlchemy then discards the whole
            # pool, the request answers 503 (retry), and the publish batcher retries its
            # batch once by itself (event/batcher.py).
            pool_pre_ping=False,
            pool_recycle=1800,
            **json_options,
        )
    path = str(settings.sqlite_path() or ":memory:")
    connector = functools.partial(
        _sqlite_connector, path, autocheckpoint=not background_checkpoints
    )

    async def connect() -> InlineSQLiteConnection:
        return await InlineSQLiteConnection(connector, 64)

    engine = create_async_engine(url, async_creator=connect, **json_options)

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION)
        driver: InlineSQLiteConnection = conn.connection.driver_connection
        driver.begin_now(immediate=bool(write))

    return engine


class Database:
    """Engine + session factory owned by the app's lifespan (and by workers)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        path = settings.sqlite_path() if settings.is_sqlite else None
        self.engine = create_engine(settings, background_checkpoints=path is not None)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        self.is_sqlite = settings.is_sqlite
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        # A file database is checkpointed by a task (WalCheckpointer), not in commits; it
        # starts with the first write.
        self._checkpointer = (
            WalCheckpointer(str(path), self._write_lock)
            if path is not None and self._write_lock is not None
            else None
        )
        self._writer: AsyncConnection | None = None

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reads; rolled back at the end."""
        async with self.sessionmaker() as session:
            yield session

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A write transaction: committed when the block exits cleanly, else rolled back.
        What was registered with :func:`after_commit` runs after the commit, what was
        registered with :func:`after_rollback` if it does not commit."""
        undo: list[Callable[[], None]] = []
        try:
            with _writing():
                async with self._connection() as conn:
                    async with AsyncSession(bind=conn, expire_on_commit=False) as session:
                        undo = session.info.setdefault(_AFTER_ROLLBACK, [])
                        yield session
                        await session.commit()
                        undo = []
                        callbacks: list[Callable[[], None]] = session.info.pop(_AFTER_COMMIT, [])
        except BaseException:
            for callback in undo:
                callback()
            raise
        for callback in callbacks:  # outside the lock and the transaction
            callback()

    @contextlib.asynccontextmanager
    async def write_connection(self) -> AsyncIterator[AsyncConnection]:
        """Like :meth:`write`, on a bare Core connection: no ORM session to set up and tear
        down (the delivery engine's claims and writes, many per second)."""
        with _writing():
            async with self._connection() as conn, conn.begin():
                yield conn

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection]:
        """A connection for one write transaction. PostgreSQL: one from the pool. SQLite:
        the connection kept for writes, under the write lock (writes are one at a time
        anyway; taking a connection from the pool and giving it back cost four times an
        engine's transaction)."""
        if self._write_lock is None:
            async with self.engine.connect() as conn:
                yield await conn.execution_options(**{WRITE_OPTION: True})
            return
        async with self._write_lock:
            if self._writer is None:
                if self._checkpointer is not None:
                    self._checkpointer.start()
                conn = await self.engine.connect()
                self._writer = await conn.execution_options(**{WRITE_OPTION: True})
            conn = self._writer
            try:
                yield conn
            finally:
                if conn.invalidated or conn.in_transaction():  # not fit for the next one
                    self._writer = None
                    await conn.close()

    async def ping(self) -> None:
        """One round trip to the database (readiness); raises if it does not answer."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            await writer.close()
        if self._checkpointer is not None:
            await self._checkpointer.stop()
        await self.engine.dispose()


def after_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the write transaction of ``session`` has committed (see
    :meth:`Database.write`); never if it rolls back."""
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


def after_rollback(session: AsyncSession, callback: Callable[[], None]) -> None:
    """Run ``callback`` if the write transaction of ``session`` ends without committing
    (see :meth:`Database.write`): to undo what was reserved in memory for it."""
    session.info.setdefault(_AFTER_ROLLBACK, []).append(callback)


# SQLSTATE classes of a database that is unreachable or restarting: connection exceptions
# (08xxx), admin/crash shutdown and "cannot connect now" (57P01-03), too many connections.
_UNAVAILABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")


# SQLSTATEs of a transaction PostgreSQL aborted to break a conflict with others (a deadlock,
# a serialization failure): nothing of it was kept, and running it again is the remedy.
_CONFLICT_SQLSTATES = ("40P01", "40001")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps (SQLAlchemy's ``orig``, causes, contexts), each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__


def _sqlstate(exc: BaseException) -> str | None:
    state = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    return state if isinstance(state, str) else None


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot be reached right now (down, restarting,
    refusing connections, SQLite locked past its busy timeout), as opposed to a bug."""
    for current in _chain(exc):
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, ConnectionError | TimeoutError):
            return True
        state = _sqlstate(current)
        if state is not None and state.startswith(_UNAVAILABLE_SQLSTATES):
            return True
        if isinstance(current, sqlite3.OperationalError) and "locked" in str(current):
            return True
    return False


def transaction_conflict(exc: BaseException) -> bool:
    """Whether the database aborted the transaction to resolve a conflict with concurrent
    ones (deadlock, serialization failure): safe and right to run it again."""
    return any(_sqlstate(current) in _CONFLICT_SQLSTATES for current in _chain(exc))


F = TypeVar("F", bound=Callable[..., Any])


def cross_tenant(reason: str) -> Callable[[F], F]:
    """Mark a repository function that reads tenant-owned rows without a tenant on purpose
    (operator views, gauges). Every other query of tenant-owned rows takes ``tenant_id``:
    ``tests/unit/test_tenant_scope.py`` fails when a new one does not."""
    if not reason:
        raise ValueError("say why the query is not scoped to a tenant")

    def mark(function: F) -> F:
        return function

    return mark
