"""The history bench/pages.py measures the pages against: ``--events`` events over the
last 30 days written straight into a fresh database, in bulk, from one generator (see
bench/pages.py for the mix). SQLite takes the rows by ``executemany`` in big transactions,
each value as the model's column type binds it; PostgreSQL by ``COPY`` (asyncpg), then
``VACUUM ANALYZE`` (bench/purge.py's ``settle``)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import random
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import JSON, Table
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

from bench.procs import BenchError
from bench.purge import settle, sql
from bench.services import fresh_postgres
from webhookd.ids import Kind, format_id
from webhookd.models import Attempt, DeadLetter, Delivery, Event

TENANTS = 4  # the first holds 70 % of the events, the others 10 % each
ENDPOINTS = 5  # per tenant
DAYS = 30
CHUNK = 50_000  # events per transaction (SQLite) or COPY round (PostgreSQL)
NOWHERE = "http://127.0.0.1:9/never-called"  # the workers are off: nothing is ever sent
# Event types and their shares: a common one, the long tail, one rare one.
TYPES = [("invoice.paid", 0.30), ("user.created", 0.25), ("order.shipped", 0.20)]
TYPES += [(f"catalog.item{n}.changed", 0.0124) for n in range(20)]
TYPES += [("account.closed", 0.002)]
COMMON_TYPE, RARE_TYPE = "order.shipped", "account.closed"


# -- the history -----------------------------------------------------------------------------


@dataclass
class Layout:
    """What the API created (row ids of tenants and endpoints), and what the seed noted for
    the pages: an old event with a dead delivery, that delivery."""

    tenants: list[int]
    endpoints: dict[int, list[int]]  # tenant row id → its endpoints' row ids
    endpoint_refs: dict[int, str]  # endpoint row id → its public id
    sample: dict[str, Any] = field(default_factory=dict)


def _ulid(moment: dt.datetime, rng: random.Random) -> uuid.UUID:
    """A public id as webhookd makes them (a ULID of the row's creation time)."""
    return uuid.UUID(int=(int(moment.timestamp() * 1000) << 80) | rng.getrandbits(80))


def _tenant_of(n: int) -> int:
    return 0 if n % 10 < 7 else n % 10 - 6


class History:
    """The rows of ``count`` events over the last DAYS days, in id (and time) order."""

    def __init__(self, layout: Layout, count: int, end: dt.datetime) -> None:
        self.layout, self.count, self.end = layout, count, end
        self.start = end - dt.timedelta(days=DAYS)
        self.rng = random.Random(16)
        self.types = [t for t, _ in TYPES]
        self.weights = [w for _, w in TYPES]
        self.ids = {"delivery": 0, "attempt": 0, "dead_letter": 0}

    def _next(self, kind: str) -> int:
        self.ids[kind] += 1
        return self.ids[kind]

    def chunks(self) -> Iterator[dict[str, list[dict[str, Any]]]]:
        for first in range(1, self.count + 1, CHUNK):
            rows: dict[str, list[dict[str, Any]]] = {
                "events": [],
                "deliveries": [],
                "attempts": [],
                "dead_letters": [],
            }
            for n in range(first, min(first + CHUNK, self.count + 1)):
                self._event(n, rows)
            yield rows

    def _event(self, n: int, rows: dict[str, list[dict[str, Any]]]) -> None:
        rng = self.rng
        at = self.start + (self.end - self.start) * (n / (self.count + 1))
        tenant = self.layout.tenants[_tenant_of(n)]
        event_type = rng.choices(self.types, self.weights)[0]
        event = {
            "id": n,
            "public_id": _ulid(at, rng),
            "tenant_id": tenant,
            "event_id": f"ev-{n:08d}",
            "event_type": event_type,
            "payload": {"n": n, "type": event_type, "amount": n % 997, "note": "x" * 200},
            "operational": False,
            "channels": None,
            "created_at": at,
        }
        rows["events"].append(event)
        endpoints = self.layout.endpoints[tenant]
        fan_out = 2 if rng.random() < 0.2 else 1
        for k in range(fan_out):
            self._delivery(event, endpoints[(n + k) % len(endpoints)], rows)

    def _delivery(
        self, event: dict[str, Any], endpoint: int, rows: dict[str, list[dict[str, Any]]]
    ) -> None:
        at: dt.datetime = event["created_at"]
        age = self.end - at
        r = self.rng.random()
        if r < 0.02:
            status, attempts = "dead", 5
        elif age < dt.timedelta(days=1) and r < 0.05:
            status, attempts = "retrying", 2
        elif age < dt.timedelta(minutes=10) and r < 0.5:
            status, attempts = "pending", 0
        else:
            status, attempts = "succeeded", 1 if r < 0.97 else 2
        failed = status in ("dead", "retrying")
        done = at + dt.timedelta(milliseconds=40 + 3600_000 * (attempts - 1) * failed)
        delivery = {
            "id": self._next("delivery"),
            "public_id": _ulid(at, self.rng),
            "tenant_id": event["tenant_id"],
            "event_id": event["id"],
            "endpoint_id": endpoint,
            "status": status,
            "attempt_count": attempts,
            "cycle": 1,
            "next_attempt_at": done + dt.timedelta(minutes=30)
            if status in ("retrying", "pending")
            else None,
            "queue_key": int(at.timestamp() * 1e6),
            "lease_owner": None,
            "lease_expires_at": None,
            "last_error": "HTTP 503 from the endpoint" if failed else None,
            "last_status_code": 503 if failed else (200 if status == "succeeded" else None),
            "created_at": at,
            "updated_at": done,
            "delivered_at": done if status == "succeeded" else None,
        }
        rows["deliveries"].append(delivery)
        if failed or (status == "succeeded" and self.end - at < dt.timedelta(days=3)):
            for number in range(1, attempts + 1):
                rows["attempts"].append(self._attempt(delivery, number, status))
        if status == "dead":
            rows["dead_letters"].append(self._dead_letter(event, delivery))
            if (
                event["tenant_id"] == self.layout.tenants[0]
                and "event_id" not in self.layout.sample
            ):
                if self.end - at < dt.timedelta(days=DAYS / 2):  # one from the middle
                    self.layout.sample["event_id"] = event["event_id"]
                    self.layout.sample["delivery_id"] = format_id(
                        Kind.DELIVERY, delivery["public_id"]
                    )
                    self.layout.sample["endpoint"] = endpoint

    def _attempt(self, delivery: dict[str, Any], number: int, status: str) -> dict[str, Any]:
        ok = status == "succeeded" and number == delivery["attempt_count"]
        return {
            "id": self._next("attempt"),
            "delivery_id": delivery["id"],
            "cycle": 1,
            "attempt_number": number,
            "started_at": delivery["created_at"] + dt.timedelta(minutes=60 * (number - 1)),
            "duration_ms": 38.5,
            "response_status": 200 if ok else 503,
            "response_body": '{"ok": true}' if ok else "Service Unavailable",
            "error_kind": None if ok else "http_status",
            "error_message": None if ok else "HTTP 503",
            "succeeded": ok,
        }

    def _dead_letter(self, event: dict[str, Any], delivery: dict[str, Any]) -> dict[str, Any]:
        resolved = self.rng.random() < 0.1
        return {
            "id": self._next("dead_letter"),
            "public_id": _ulid(delivery["updated_at"], self.rng),
            "tenant_id": event["tenant_id"],
            "delivery_id": delivery["id"],
            "endpoint_id": delivery["endpoint_id"],
            "event_id": event["id"],
            "event_type": event["event_type"],
            "attempts": delivery["attempt_count"],
            "last_error": delivery["last_error"],
            "resolved": resolved,
            "resolution": "discarded" if resolved else None,
            "created_at": delivery["updated_at"],
            "resolved_at": delivery["updated_at"] + dt.timedelta(hours=2) if resolved else None,
        }


TABLES: dict[str, Table] = {
    m.__tablename__: m.__table__  # type: ignore[misc]
    for m in (Event, Delivery, Attempt, DeadLetter)
}


def _columns(table: Table, row: dict[str, Any]) -> list[str]:
    """The model's columns; the generator must give each of them (no silent default)."""
    names = [c.name for c in table.columns]
    if set(names) != set(row):
        raise BenchError(f"{table.name}: the seed's columns {sorted(row)} are not {names}")
    return names


# -- writing it ------------------------------------------------------------------------------


def seed_sqlite(path: Path, history: History) -> None:
    """``executemany`` per table and chunk, one transaction per chunk, each value as the
    model's column type binds it on SQLite (datetimes as UTC text, UUIDs as hex...)."""
    dialect = SQLiteDialect_pysqlite()
    conn = sqlite3.connect(path, timeout=60, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    try:
        for rows in history.chunks():
            conn.execute("BEGIN")
            for name, batch in rows.items():
                if not batch:
                    continue
                table = TABLES[name]
                names = _columns(table, batch[0])
                bind = [
                    table.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in names
                ]
                pairs = list(zip(names, bind, strict=True))
                conn.executemany(
                    f"INSERT INTO {name} ({', '.join(names)}) VALUES "
                    f"({', '.join('?' * len(names))})",
                    [tuple(b(r[c]) if b else r[c] for c, b in pairs) for r in batch],
                )
            conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


async def _seed_postgres(dsn: str, history: History) -> None:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        for rows in history.chunks():
            async with conn.transaction():
                for name, batch in rows.items():
                    if not batch:
                        continue
                    table = TABLES[name]
                    names = _columns(table, batch[0])
                    as_json = {c for c in names if isinstance(table.c[c].type, JSON)}
                    records = [
                        tuple(json.dumps(r[c]) if c in as_json else r[c] for c in names)
                        for r in batch
                    ]
                    await conn.copy_records_to_table(name, records=records, columns=names)
        for name in TABLES:
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                f"(SELECT coalesce(max(id), 0) + 1 FROM {name}), false)"
            )
    finally:
        await conn.close()


def seed_postgres(dsn: str, history: History) -> None:
    """``COPY`` (binary, asyncpg) per table and chunk; the id sequences moved past the rows;
    then ``VACUUM ANALYZE`` and a checkpoint (bench/purge.py's ``settle``)."""
    asyncio.run(_seed_postgres(dsn, history))
    settle(dsn)


# -- the database ----------------------------------------------------------------------------


@dataclass
class Database:
    url: str  # WEBHOOKD_DATABASE_URL
    kind: str
    path: Path | None = None  # SQLite
    dsn: str | None = None  # PostgreSQL

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        if self.path is not None:
            conn = sqlite3.connect(self.path, timeout=30)
            try:
                return list(conn.execute(query).fetchall())
            finally:
                conn.close()
        assert self.dsn is not None
        return [tuple(r) for r in sql(self.dsn, query, fetch=True)]

    def seed(self, history: History) -> None:
        if self.path is not None:
            seed_sqlite(self.path, history)
        else:
            assert self.dsn is not None
            seed_postgres(self.dsn, history)

    def execute(self, statement: str) -> None:
        if self.path is not None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            try:
                conn.execute(statement)
            finally:
                conn.close()
        else:
            assert self.dsn is not None
            sql(self.dsn, statement)


@contextlib.contextmanager
def scratch_database(kind: str) -> Iterator[Database]:
    if kind == "postgres":
        with fresh_postgres() as dsn:
            yield Database(dsn, kind, dsn=dsn)
        return
    with tempfile.TemporaryDirectory(prefix="webhookd-bench-pages-") as tmp:
        path = Path(tmp) / "pages.db"
        yield Database(f"sqlite:///{path}", kind, path=path)


def layout_of(db: Database) -> Layout:
    tenants = [int(r[0]) for r in db.rows("SELECT id FROM tenants ORDER BY id")]
    endpoints: dict[int, list[int]] = {t: [] for t in tenants}
    refs: dict[int, str] = {}
    for endpoint, tenant, public in db.rows(
        "SELECT id, tenant_id, public_id FROM endpoints ORDER BY id"
    ):
        endpoints[int(tenant)].append(int(endpoint))
        refs[int(endpoint)] = format_id(Kind.ENDPOINT, uuid.UUID(str(public)))
    return Layout(tenants, endpoints, refs)
