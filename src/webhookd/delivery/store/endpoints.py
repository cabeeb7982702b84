"""The endpoint side of the delivery store: health (breaker, disable, enable), FIFO turns
and operational notices. Each function runs inside the caller's transaction; where several
processes deliver (PostgreSQL), the endpoint rows are locked first (``FOR UPDATE``, in id
order) so that one endpoint's health and FIFO turn are decided by one process at a time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.base import Executable

from webhookd.db import UTCDateTime
from webhookd.delivery import lifecycle
from webhookd.delivery.fairness import to_key
from webhookd.delivery.health import HEALTH_COLUMNS, Health
from webhookd.ids import new_id
from webhookd.models import (
    CIRCUIT_NOT_CLOSED,
    Delivery,
    DeliveryStatus,
    Endpoint,
    EndpointKind,
    Event,
    Ordering,
    Tenant,
)

# Deliveries that are live and not in flight: what a breaker defers, a disable parks, an
# enable or a FIFO turn releases.
_IDLE = Delivery.status.in_((DeliveryStatus.PENDING, DeliveryStatus.RETRYING))
_OPEN = Delivery.status.in_(
    (DeliveryStatus.PENDING, DeliveryStatus.DELIVERING, DeliveryStatus.RETRYING)
)
_NOW = bindparam("now", type_=UTCDateTime())
_UNTIL = bindparam("until", type_=UTCDateTime())


_HEALTH = (
    select(Endpoint.id, Endpoint.ordering, *HEALTH_COLUMNS)
    .where(Endpoint.id.in_(bindparam("ids", expanding=True)))
    .order_by(Endpoint.id)
)
# FOR NO KEY UPDATE (PostgreSQL; SQLite has no row locks): one recorder at a time per
# endpoint, without blocking the FOR KEY SHARE a publish takes on each endpoint its new
# deliveries reference. FOR UPDATE would, and a publish inserting for endpoints in another
# order than the recorder locks them deadlocked with it.
_HEALTH_OF = {False: _HEALTH, True: _HEALTH.with_for_update(key_share=True)}
# A claim gating its rows: it already holds delivery rows (FOR UPDATE SKIP LOCKED) that a
# recorder holding the endpoint may want next (a FIFO turn, a breaker parking them), so it
# must not wait for the endpoint: it skips one that is locked (PostgreSQL found that
# deadlock after deadlock_timeout, 1 s, and aborted the claim).
_HEALTH_SKIP_LOCKED = _HEALTH.with_for_update(key_share=True, skip_locked=True)

SET_HEALTH = (
    update(Endpoint)
    .where(Endpoint.id == bindparam("w_id"))
    .values({column.key: bindparam("v_" + column.key) for column in HEALTH_COLUMNS})
)

# The head of a FIFO endpoint: its oldest live delivery.
FIFO_HEAD = select(func.min(Delivery.id)).where(
    Delivery.endpoint_id == bindparam("endpoint"), _OPEN
)

# An open circuit's deliveries wait (no next attempt) instead of coming due, all at once,
# when it cools down: those due before ``until``, the end of its cool-down. One of them is
# made due for the probe (RELEASE_PROBE), the rest when a probe succeeds (RELEASE_ENDPOINT).
PARK_DUE = (
    update(Delivery)
    .where(
        Delivery.endpoint_id == bindparam("endpoint"),
        _IDLE,
        Delivery.next_attempt_at.is_not(None),
        Delivery.next_attempt_at < _UNTIL,
    )
    .values(next_attempt_at=None, updated_at=_NOW)
)
# Endpoints whose circuit has cooled down (or whose probe's deadline passed).
COOLED = select(Endpoint.id).where(
    text(CIRCUIT_NOT_CLOSED),
    Endpoint.circuit_until <= _NOW,
    Endpoint.disabled_reason.is_(None),
)
# The oldest waiting delivery of a cooled endpoint, due now as its probe, unless one of
# its deliveries is due or in flight already (that one will be the probe).
_BUSY = (
    select(Delivery.id)
    .where(
        Delivery.endpoint_id == bindparam("endpoint"),
        or_(
            Delivery.status == DeliveryStatus.DELIVERING,
            and_(_IDLE, Delivery.next_attempt_at <= _NOW),
        ),
    )
    .exists()
)
RELEASE_PROBE = (
    update(Delivery)
    .where(
        Delivery.id
        == select(func.min(Delivery.id))
        .where(
            Delivery.endpoint_id == bindparam("endpoint"),
            _IDLE,
            Delivery.next_attempt_at.is_(None),
        )
        .scalar_subquery(),
        ~_BUSY,
    )
    .values(next_attempt_at=_NOW, queue_key=bindparam("key"), updated_at=_NOW)
    .returning(Delivery.id)
)
# A disabled endpoint's idle deliveries wait (no next attempt) until it is enabled.
PARK_ENDPOINT = (
    update(Delivery)
    .where(
        Delivery.endpoint_id == bindparam("endpoint"),
        _IDLE,
        Delivery.next_attempt_at.is_not(None),
    )
    .values(next_attempt_at=None, updated_at=_NOW)
)
# Due now: what waited, and what the breaker deferred up to ``until``.
RELEASE_ENDPOINT = (
    update(Delivery)
    .where(
        Delivery.endpoint_id == bindparam("endpoint"),
        _IDLE,
        or_(
            Delivery.next_attempt_at.is_(None),
            and_(Delivery.next_attempt_at > _NOW, Delivery.next_attempt_at <= _UNTIL),
        ),
    )
    .values(next_attempt_at=_NOW, queue_key=bindparam("key"), updated_at=_NOW)
    .returning(Delivery.id)
)
# A FIFO endpoint's next delivery, when it waits for its turn. The row is skipped if
# another transaction holds it: that one claimed it (it was due) or is releasing it.
RELEASE_HEAD = (
    update(Delivery)
    .where(
        Delivery.id.in_(
            select(Delivery.id)
            .where(Delivery.id == bindparam("head"), _IDLE, Delivery.next_attempt_at.is_(None))
            .with_for_update(skip_locked=True)
        )
    )
    .values(next_attempt_at=_NOW, queue_key=bindparam("key"), updated_at=_NOW)
    .returning(Delivery.id)
)


def health_query(*, lock: bool, skip_locked: bool = False) -> Executable:
    """The statement reading endpoints' health and ordering (bound ``ids``), locked with
    ``lock``; ``skip_locked`` (with ``lock``): an endpoint another transaction holds is
    left out. The stores run it on their driver (:func:`health_by_id` reads the rows)."""
    return _HEALTH_SKIP_LOCKED if lock and skip_locked else _HEALTH_OF[lock]


def health_by_id(rows: Iterable[Any]) -> dict[int, tuple[Health, bool]]:
    """Each endpoint's health and whether it is FIFO, from :func:`health_query`'s rows."""
    return {row.id: (Health.of(row), row.ordering == Ordering.FIFO) for row in rows}


async def set_health(conn: AsyncConnection, values: Mapping[int, Health]) -> None:
    if values:
        await conn.execute(
            SET_HEALTH,
            [
                {"w_id": endpoint_id, **{"v_" + k: v for k, v in h.values().items()}}
                for endpoint_id, h in values.items()
            ],
        )


async def fifo_head(conn: AsyncConnection, endpoint_id: int) -> int | None:
    head = await conn.scalar(FIFO_HEAD, {"endpoint": endpoint_id})
    return int(head) if head is not None else None


async def release_head(conn: AsyncConnection, endpoint_id: int, now: dt.datetime) -> list[int]:
    """Make a FIFO endpoint's head due if it waits for its turn."""
    head = await fifo_head(conn, endpoint_id)
    if head is None:
        return []
    result = await conn.execute(RELEASE_HEAD, {"head": head, "now": now, "key": to_key(now)})
    return [row[0] for row in result]


async def park_due(
    conn: AsyncConnection, endpoint_id: int, until: dt.datetime, now: dt.datetime
) -> None:
    """The endpoint's circuit opened until ``until``: what would come due before waits."""
    await conn.execute(PARK_DUE, {"endpoint": endpoint_id, "until": until, "now": now})


async def release_probes(conn: AsyncConnection, now: dt.datetime) -> list[int]:
    """One waiting delivery of each endpoint whose circuit cooled down, due now: the claim
    that takes it sends it as the probe (``health.gate``). Their ids."""
    woken: list[int] = []
    for endpoint_id in (await conn.scalars(COOLED, {"now": now})).all():
        params = {"endpoint": endpoint_id, "now": now, "key": to_key(now)}
        woken += [row[0] for row in await conn.execute(RELEASE_PROBE, params)]
    return woken


async def park_endpoint(conn: AsyncConnection, endpoint_id: int, now: dt.datetime) -> None:
    """The endpoint was disabled: its idle deliveries wait for the enable."""
    await conn.execute(PARK_ENDPOINT, {"endpoint": endpoint_id, "now": now})
    await conn.execute(update(Endpoint).where(Endpoint.id == endpoint_id).values(disabled_at=now))


async def release_endpoint(
    conn: AsyncConnection, endpoint_id: int, until: dt.datetime | None, now: dt.datetime
) -> list[int]:
    """Make due what waited for the endpoint, and what its breaker deferred up to
    ``until``; their ids."""
    params = {"endpoint": endpoint_id, "now": now, "until": until or now, "key": to_key(now)}
    return [row[0] for row in await conn.execute(RELEASE_ENDPOINT, params)]


# -- operational notices ----------------------------------------------------------------------

_OPERATIONAL_URL = select(Tenant.operational_webhook_url).where(Tenant.id == bindparam("tenant"))
_OPERATIONAL_ENDPOINT = select(Endpoint.id, Endpoint.url).where(
    Endpoint.tenant_id == bindparam("tenant"), Endpoint.kind == EndpointKind.OPERATIONAL
)


async def _operational_endpoint(
    conn: AsyncConnection, tenant_id: int, now: dt.datetime
) -> int | None:
    """The tenant's hidden operational endpoint, created or pointed at its current
    ``operational_webhook_url``; None when the tenant has none."""
    url = await conn.scalar(_OPERATIONAL_URL, {"tenant": tenant_id})
    if not url:
        return None
    found = (await conn.execute(_OPERATIONAL_ENDPOINT, {"tenant": tenant_id})).first()
    if found is None:
        values = {
            "public_id": new_id(),
            "tenant_id": tenant_id,
            "url": url,
            "event_types": [],
            "is_active": True,
            "kind": EndpointKind.OPERATIONAL.value,
            "ordering": Ordering.UNORDERED.value,
            "circuit": "closed",
            "consecutive_failures": 0,
            "created_at": now,
            "updated_at": now,
        }
        inserted = await conn.execute(insert(Endpoint).values(values).returning(Endpoint.id))
        return int(inserted.scalar_one())
    if found.url != url:
        await conn.execute(
            update(Endpoint).where(Endpoint.id == found.id).values(url=url, updated_at=now)
        )
    return int(found.id)


async def notify(
    conn: AsyncConnection,
    tenant_id: int,
    event_type: str,
    payload: dict[str, Any],
    now: dt.datetime,
) -> int | None:
    """Send the tenant an operational notice (``endpoint.disabled``, …) through the engine,
    if it has an operational webhook: a hidden event and its delivery, in this transaction.
    The new delivery's id."""
    endpoint_id = await _operational_endpoint(conn, tenant_id, now)
    if endpoint_id is None:
        return None
    event_public = new_id()
    event = await conn.execute(
        insert(Event)
        .values(
            public_id=event_public,
            tenant_id=tenant_id,
            event_id=f"op_{event_public.hex}",
            event_type=event_type,
            payload=payload,
            operational=True,
            created_at=now,
        )
        .returning(Event.id)
    )
    event_pk = event.scalar_one()
    values = {
        **lifecycle.new_delivery(now),
        "public_id": new_id(),
        "tenant_id": tenant_id,
        "event_id": event_pk,
        "endpoint_id": endpoint_id,
        "queue_key": to_key(now),
    }
    inserted = await conn.execute(insert(Delivery).values(values).returning(Delivery.id))
    return int(inserted.scalar_one())
