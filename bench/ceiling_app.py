"""Ingest ceiling (b): the publish route of webhookd without a database.

Same request model (``webhookd.event.schemas.EventCreate``), the same ``X-API-Key`` header
dependency (checked against a constant), a 202 JSON answer of the same shape
(``EventAccepted``), served exactly as ``webhookd serve`` serves: uvicorn, 1 worker,
uvloop, webhookd's httptools protocol with its request limits, no access log.

    python -m bench.ceiling_app PORT
"""

from __future__ import annotations

import datetime as dt
import itertools
import sys
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import APIKeyHeader

from bench.procs import serve_local
from webhookd.api.server import BoundedHttpToolsProtocol
from webhookd.event.schemas import DeliverySummary, EventAccepted, EventCreate
from webhookd.models import DeliveryStatus

API_KEY = "whk_ceiling"
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)
app = FastAPI()
ids = itertools.count(1)


async def tenant(key: Annotated[str | None, Depends(api_key_header)]) -> int:
    if key != API_KEY:
        raise HTTPException(401, "invalid API key")
    return 1


def accepted(data: EventCreate, tenant_id: int) -> EventAccepted:
    """The 202 answer webhookd would give, with made-up ids."""
    pk = next(ids)
    return EventAccepted(
        id=f"evt_{pk:026d}",
        event_id=data.event_id,
        event_type=data.event_type,
        created_at=dt.datetime.now(dt.UTC),
        deliveries=[
            DeliverySummary(
                id=f"dlv_{pk:026d}",
                endpoint_id=f"ep_{tenant_id:026d}",
                status=DeliveryStatus.PENDING,
            )
        ],
        duplicate=False,
    )


@app.post("/api/v1/events", status_code=202, response_model=EventAccepted)
async def publish_event(
    data: EventCreate, tenant_id: Annotated[int, Depends(tenant)]
) -> EventAccepted:
    return accepted(data, tenant_id)


@app.get("/ready")
async def ready() -> dict[str, bool]:
    return {"ok": True}


if __name__ == "__main__":
    serve_local(
        app,
        int(sys.argv[1]),
        lifespan="on",
        timeout_graceful_shutdown=10,
        http=BoundedHttpToolsProtocol,
    )
