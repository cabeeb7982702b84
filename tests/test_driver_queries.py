"""The stores run the engine's hot statements on the driver (store/driver.py): the same
rows and the same stored values as SQLAlchemy's execution of the same statement, on SQLite
and on PostgreSQL.

A server publishes through the API to endpoints with every kind of setting (JSON columns,
enums, encrypted headers, a FIFO endpoint, a tenant-wide and an endpoint secret); then each
statement runs both ways in one transaction on its database and the results must be equal,
value and type, row for row."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select, text, update

from tests.conftest import TenantCtx, create_tenant
from tests.fixtures.server import ADMIN_KEY, LiveServer, running_server
from webhookd.db import Database
from webhookd.delivery import lifecycle
from webhookd.delivery.store import common, create_store, endpoints
from webhookd.delivery.store.driver import driver_query
from webhookd.models import Circuit, Delivery, DisabledReason, Endpoint, Ordering, Tenant


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[LiveServer]:
    # Endpoints nobody listens on: the rows stay in every state the engine leaves them.
    with running_server(
        tmp_path_factory, "driver", backend=backend, allow_private_targets=True
    ) as srv:
        yield srv


@pytest.fixture(scope="module")
def tenant(server: LiveServer) -> Iterator[TenantCtx]:
    with server.client(**{"X-Admin-Key": ADMIN_KEY}) as admin:
        ctx = create_tenant(server, admin)
    dead = "http://127.0.0.1:9/hook"
    ctx.add_endpoint(dead)
    ctx.add_endpoint(
        dead + "/policy",
        retry_schedule=[1, 60, 3600],
        rate_limit=2.5,
        headers={"X-Team": "core", "Authorization": "Bearer s3cret"},
        ordering="fifo",
    )
    rotated = ctx.add_endpoint(dead + "/own-secret")
    rotate = ctx.client.post(f"/api/v1/tenants/{ctx.id}/endpoints/{rotated['id']}/rotate-secret")
    assert rotate.status_code == 200, rotate.text
    for n in range(12):
        response = ctx.publish(event_id=f"drv-{n}", n=n, text="é ✓", nested={"a": [1, None]})
        assert response.status_code == 202, response.text
    yield ctx
    ctx.client.close()


class Rollback(Exception):
    pass


def _both(server: LiveServer, check: Any) -> None:
    """Run ``check(conn, store)`` in a write transaction on the server's database (a store
    of its kind), then roll back."""

    async def run() -> None:
        db = Database(server.settings)
        store = create_store(db.engine.dialect.name, decrypt=str)
        try:
            async with db.write_connection() as conn:
                await check(conn, store)
                raise Rollback
        except Rollback:
            pass
        finally:
            await db.dispose()

    asyncio.run(run())


def _typed(rows: Any) -> list[list[tuple[type, Any]]]:
    return [[(type(v), v) for v in row] for row in rows]


CASES = {
    "claim candidates": (common.claim_candidates(skip_saturated=False, lock=False), {}),
    "past saturated endpoints": (
        common.claim_candidates(skip_saturated=True, lock=False),
        {"saturated": [10**9]},
    ),
    "from a queue key": (
        common.claim_candidates(skip_saturated=True, lock=False, floor=True),
        {"saturated": [10**9, 10**9 + 1], "floor": 0},
    ),
    "load jobs": (common.LOAD_JOBS, {}),
    "held by an owner": (common._HELD[False], {"owner": "someone"}),
    "held, locked": (common._HELD[True], {"owner": "someone"}),
    "routing": (common.ROUTING, {}),
    "endpoint health": (endpoints.health_query(lock=False), {}),
    "endpoint health, locked": (endpoints.health_query(lock=True, skip_locked=True), {}),
}


@pytest.mark.parametrize("name", CASES)
def test_a_select_gives_what_sqlalchemy_gives(
    server: LiveServer, tenant: TenantCtx, name: str
) -> None:
    statement, extra = CASES[name]

    async def check(conn: Any, store: Any) -> None:
        if name.endswith(", locked") and conn.dialect.name == "sqlite":
            return  # FOR UPDATE: PostgreSQL only
        ids = list((await conn.execute(select(Delivery.id).order_by(Delivery.id))).scalars())
        tenants = list((await conn.execute(select(Tenant.id))).scalars())
        assert len(ids) >= 36
        # Every row due, some held by an owner: each statement has rows to return.
        await conn.execute(text("UPDATE deliveries SET next_attempt_at = '2000-01-01 00:00:00'"))
        await conn.execute(
            text(
                "UPDATE deliveries SET status = 'delivering', lease_owner = 'someone' "
                f"WHERE id IN ({ids[0]}, {ids[5]}, {ids[7]})"
            )
        )
        params = {
            "now": dt.datetime.now(dt.UTC),
            "scan": 20,
            "ids": ids[:3] + ids[-9:],
            "tenants": tenants,
            **extra,
        }
        if name.startswith("endpoint health"):  # one endpoint with every column set
            params["ids"] = list((await conn.execute(select(Endpoint.id))).scalars())
            await conn.execute(
                update(Endpoint)
                .where(Endpoint.id == params["ids"][0])
                .values(
                    circuit=Circuit.OPEN,
                    circuit_until=params["now"],
                    circuit_cooldown=60.0,
                    consecutive_failures=7,
                    failing_since=params["now"],
                    disabled_reason=DisabledReason.FAILING,
                    ordering=Ordering.FIFO,
                )
            )
        expected = list(await conn.execute(statement, params))
        got = await store._fetch(conn, statement, params)
        assert expected, "nothing to compare"
        assert _typed(got) == _typed(expected)
        assert [r._fields for r in got[:1]] == [tuple(r._fields) for r in expected[:1]] or (
            name == "routing"  # its unnamed column (the queue head) gets a position name
        )
        if name == "load jobs":  # by name too, as the store reads them
            assert [r.headers_encrypted for r in got] == [r.headers_encrypted for r in expected]
            assert any(r.retry_schedule == [1, 60, 3600] for r in got)

    _both(server, check)


def test_a_write_stores_what_sqlalchemy_stores(server: LiveServer, tenant: TenantCtx) -> None:
    """LEASE through SQLAlchemy on some rows and on the driver on others, with the same
    values: the stored columns are byte for byte alike."""
    now = dt.datetime.now(dt.UTC)
    values = lifecycle.leased(owner="me", now=now, lease=dt.timedelta(seconds=30))
    params = {"v_" + k: v for k, v in values.items()}
    columns = ", ".join(values)

    async def check(conn: Any, store: Any) -> None:
        ids = list((await conn.execute(select(Delivery.id).order_by(Delivery.id))).scalars())
        await conn.execute(common.LEASE, {"ids": ids[:2], **params})
        await store._execute(conn, common.LEASE, {"ids": ids[2:5], **params})
        stored = (
            await conn.execute(
                text(
                    f"SELECT {columns} FROM deliveries WHERE id IN ({', '.join(map(str, ids[:5]))})"
                )  # noqa: S608
            )
        ).all()
        assert len(stored) == 5
        assert len({tuple(row) for row in stored}) == 1, stored

    _both(server, check)


def test_an_in_list_of_any_length_and_an_empty_one(server: LiveServer, tenant: TenantCtx) -> None:
    async def check(conn: Any, store: Any) -> None:
        ids = list((await conn.execute(select(Delivery.id).order_by(Delivery.id))).scalars())
        await conn.execute(text("UPDATE deliveries SET status = 'delivering', lease_owner = 'o'"))
        for n in (1, 2, 7, len(ids), 1, 7):
            rows = await store._fetch(conn, common._HELD[False], {"ids": ids[:n], "owner": "o"})
            assert sorted(r.id for r in rows) == ids[:n]
        with pytest.raises(ValueError, match="empty IN list"):
            driver_query(common._HELD[False], conn.dialect).qmark({"ids": [], "owner": "o"})

    _both(server, check)


def test_the_engine_claims_and_records_through_them(server: LiveServer, tenant: TenantCtx) -> None:
    """End to end: the server's engine claimed the deliveries above and recorded their
    failed attempts (connection refused) with these statements."""
    deadline = time.monotonic() + 15
    while True:
        response = tenant.client.get("/api/v1/deliveries", params={"limit": 100})
        assert response.status_code == 200, response.text
        rows = response.json()["items"]
        tried = {row["endpoint_id"] for row in rows if row["attempt_count"] >= 1}
        if len(rows) == 36 and len(tried) == 3:  # the FIFO one: its head only
            break
        assert time.monotonic() < deadline, rows
        time.sleep(0.1)
