"""Counts across every tenant (the operator's view), each answered from an index."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from webhookd.db import cross_tenant
from webhookd.models import (
    CIRCUIT_NOT_CLOSED,
    FAILING,
    DeadLetter,
    Delivery,
    DeliveryStatus,
    Endpoint,
    EndpointKind,
    Event,
    MetricSample,
    Tenant,
)


@cross_tenant("the operator's overview of the deployment")
async def count_tenants(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Tenant)) or 0)


@cross_tenant("the operator's overview of the deployment")
async def endpoint_health(session: AsyncSession) -> dict[str, int]:
    """Webhook endpoints: all, paused or disabled, with a breaker not closed."""
    webhook = Endpoint.kind == EndpointKind.WEBHOOK
    total = await session.scalar(select(func.count()).select_from(Endpoint).where(webhook))
    off = await session.scalar(
        select(func.count())
        .select_from(Endpoint)
        .where(webhook, (Endpoint.is_active.is_(False)) | Endpoint.disabled_reason.is_not(None))
    )
    tripped = await session.scalar(
        select(func.count()).select_from(Endpoint).where(webhook, text(CIRCUIT_NOT_CLOSED))
    )
    return {"total": int(total or 0), "disabled": int(off or 0), "circuit_open": int(tripped or 0)}


@cross_tenant("the operator's overview of the deployment")
async def count_events_since(session: AsyncSession, *, since: dt.datetime) -> int:
    query = select(func.count()).select_from(Event).where(Event.created_at >= since)
    return int(await session.scalar(query.where(Event.operational.is_(False))) or 0)


@cross_tenant("the operator's overview of the deployment")
async def count_retrying(session: AsyncSession) -> int:
    query = (
        select(func.count())
        .select_from(Delivery)
        .where(Delivery.status == DeliveryStatus.RETRYING, text(FAILING))
    )
    return int(await session.scalar(query) or 0)


@cross_tenant("the operator's overview of the deployment")
async def count_dead_letters(session: AsyncSession) -> int:
    query = select(func.count()).select_from(DeadLetter).where(DeadLetter.resolved.is_(False))
    return int(await session.scalar(query) or 0)


@cross_tenant("the operator's overview of the deployment")
async def count_due(session: AsyncSession, *, now: dt.datetime) -> int:
    query = select(func.count()).select_from(Delivery).where(Delivery.next_attempt_at <= now)
    return int(await session.scalar(query) or 0)


async def insert_sample(session: AsyncSession, sample: MetricSample) -> None:
    session.add(sample)
    await session.flush()


async def samples_since(session: AsyncSession, *, since: dt.datetime) -> list[MetricSample]:
    query = select(MetricSample).where(MetricSample.at > since).order_by(MetricSample.at)
    return list(await session.scalars(query))


async def delete_samples_before(session: AsyncSession, *, before: dt.datetime) -> int:
    result = await session.execute(delete(MetricSample).where(MetricSample.at < before))
    return max(int(getattr(result, "rowcount", 0)), 0)
