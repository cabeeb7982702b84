"""Everyday-load floor: webhookd's publish route and delivery attempt, without a database.

The ingest ceiling's route (``bench/ceiling_app.py``: the same request model, API key
dependency and 202 answer), served as ``webhookd serve`` serves, that before answering
starts webhookd's own delivery attempt of the event (``webhookd.delivery.engine.attempt``:
the envelope, the signatures, the POST through webhookd's pooled aiohttp client, the
metrics) to ``TARGET``, signed with ``SECRET``. Nothing is stored, claimed, recorded or
retried: what is left is the HTTP work in and out that every delivered event costs in any
design, the floor under ``bench/everyday.py``'s CPU per delivered event.

    python -m bench.relay_app PORT TARGET SECRET
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Annotated

import aiohttp
from fastapi import Depends, FastAPI

from bench.ceiling_app import accepted, tenant
from bench.procs import LOCALHOST
from webhookd.api.server import run
from webhookd.config import Settings
from webhookd.delivery.engine import attempt
from webhookd.delivery.http import create_client
from webhookd.delivery.job import Job
from webhookd.event.schemas import EventAccepted, EventCreate

TARGET, SECRET = (sys.argv[2], sys.argv[3]) if len(sys.argv) > 3 else ("", "")
SETTINGS = Settings(allow_private_targets=True)
CLIENT: list[aiohttp.ClientSession] = []
ATTEMPTS: set[asyncio.Task[object]] = set()


@contextlib.asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    CLIENT.append(create_client(SETTINGS))
    yield
    await CLIENT.pop().close()


app = FastAPI(lifespan=lifespan)


@app.post("/api/v1/events", status_code=202, response_model=EventAccepted)
async def publish_event(
    data: EventCreate, tenant_id: Annotated[int, Depends(tenant)]
) -> EventAccepted:
    answer = accepted(data, tenant_id)
    delivery = answer.deliveries[0]
    job = Job(
        delivery_id=0,
        tenant_id=tenant_id,
        endpoint_id=0,
        event_pk=0,
        url=TARGET,
        secrets=(SECRET,),
        event_id=data.event_id,
        event_type=data.event_type,
        payload=data.payload,
        created_at=answer.created_at,
        attempt_number=1,
        cycle=0,
        message_id=delivery.id,
        tenant_ref="tnt_relay",
        endpoint_ref=delivery.endpoint_id,
    )
    task = asyncio.create_task(attempt(CLIENT[0], job, SETTINGS))
    ATTEMPTS.add(task)
    task.add_done_callback(ATTEMPTS.discard)
    return answer


@app.get("/ready")
async def ready() -> dict[str, bool]:
    return {"ok": True}


if __name__ == "__main__":
    run(app, workers=1, host=LOCALHOST, port=int(sys.argv[1]), settings=SETTINGS)
