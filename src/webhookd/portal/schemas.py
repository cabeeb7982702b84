from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from webhookd.delivery.schemas import EndpointId


class PortalSessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint_ids: list[EndpointId] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Only these endpoints (`ep_…`): the portal shows and changes them alone, "
        "and cannot create others. Default: all the tenant's endpoints.",
    )
    ttl: int = Field(
        default=3600,
        ge=60,
        le=86_400,
        description="Seconds the link, then the portal session it opens, last (1 h by "
        "default, 24 h at most)",
    )


class PortalSessionRead(BaseModel):
    url: str = Field(description="Open it once (in a browser or an iframe) to start the session")
    token: str = Field(description="The link's token (already in `url`)")
    expires_at: dt.datetime
    endpoint_ids: list[str] | None
