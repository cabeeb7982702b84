from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from webhookd.endpoint.schemas import Metadata
from webhookd.ids import Kind, format_id
from webhookd.models import DeliveryFormat, Tenant
from webhookd.schemas import CLIENT_ID_PATTERN, NO_NUL_PATTERN

RateLimit = Annotated[
    int, Field(ge=1, le=1_000_000, description="Events per minute (token bucket capacity)")
]
StrictEventTypes = Annotated[
    bool,
    Field(
        description="Refuse (422) publishes whose event_type is not in the tenant's event-type "
        "catalog, or is archived there"
    ),
]
DeliveryFormatField = Annotated[
    DeliveryFormat,
    Field(
        description='What a delivery carries: "webhookd" (default), the envelope {event_id, '
        'event_type, payload, created_at}; "svix", the payload alone as the body, with '
        "svix-id/svix-timestamp/svix-signature headers next to webhook-* (what tenants "
        "created through the Svix API get)"
    ),
]
EMAIL_PATTERN = r"^[^@\s\x00]{1,64}@[^@\s\x00]{1,255}\.[^@\s\x00]{1,63}$"
TenantId = Annotated[
    str,
    Field(description="The tenant's id (`tnt_…`)", examples=[Kind.TENANT.example()]),
]
Uid = Annotated[
    str,
    Field(
        min_length=1,
        max_length=255,
        pattern=CLIENT_ID_PATTERN,
        description="Your own id for this tenant (e.g. your customer id), unique in the "
        "deployment; usable wherever a tenant id is. Printable ASCII without / ? # % \\, "
        "and not starting with `tnt_`.",
        examples=["customer-42"],
    ),
]


RetentionDays = Annotated[
    int,
    Field(
        ge=1,
        le=36_500,
        description="Days this tenant's events, deliveries, attempts and dead-letter entries "
        "are kept (null: WEBHOOKD_RETENTION_DAYS, 30 by default); a live delivery is never "
        "deleted",
        examples=[30],
    ),
]


Origin = Annotated[
    str,
    Field(
        max_length=255,
        pattern=r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$",
        examples=["https://app.example.com"],
    ),
]
BrandColor = Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{6}$", examples=["#3867d6"])]
LogoUrl = Annotated[str, Field(min_length=1, max_length=2048, pattern=r"^https://[^\s\x00\"'<>]+$")]


def _not_an_id(value: str | None) -> str | None:
    if value is not None and value.startswith(Kind.TENANT.value + "_"):
        raise ValueError("a uid may not start with tnt_ (the prefix of tenant ids)")
    return value


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=NO_NUL_PATTERN, examples=["My Company"])
    email: str = Field(max_length=320, pattern=EMAIL_PATTERN, examples=["webhooks@mycompany.com"])
    rate_limit: RateLimit = 100
    uid: Uid | None = None
    strict_event_types: StrictEventTypes = False
    retention_days: RetentionDays | None = None
    delivery_format: DeliveryFormatField = DeliveryFormat.WEBHOOKD
    metadata: Metadata | None = None

    @field_validator("name")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("name must not be blank")
        return value

    _uid = field_validator("uid")(_not_an_id)


class TenantUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200, pattern=NO_NUL_PATTERN)
    email: str | None = Field(default=None, max_length=320, pattern=EMAIL_PATTERN)
    rate_limit: RateLimit | None = None
    uid: Uid | None = Field(default=None, description="null removes it")
    operational_webhook_url: str | None = Field(
        default=None,
        min_length=1,
        max_length=2048,
        pattern=NO_NUL_PATTERN,
        description="Where webhookd sends this tenant endpoint.disabled, endpoint.enabled and "
        "delivery.dead_lettered notices, signed like every delivery (null: none)",
        examples=["https://your-app.com/webhookd-notices"],
    )
    strict_event_types: StrictEventTypes | None = None
    retention_days: RetentionDays | None = Field(default=None, description="null: the default")
    portal_frame_ancestors: list[Origin] | None = Field(
        default=None,
        max_length=10,
        description="Origins (scheme://host[:port]) whose pages may embed the tenant portal "
        "in a frame (Content-Security-Policy frame-ancestors); null: none",
    )
    portal_brand_color: BrandColor | None = Field(
        default=None, description="The portal's accent colour (#rrggbb)"
    )
    portal_logo_url: LogoUrl | None = Field(
        default=None, description="An https:// image shown at the top of the portal"
    )
    delivery_format: DeliveryFormatField | None = None
    metadata: Metadata | None = Field(default=None, description="null removes it")

    _uid = field_validator("uid")(_not_an_id)


class TenantRead(BaseModel):
    id: TenantId
    uid: str | None
    name: str
    email: str
    rate_limit: int
    api_key_prefix: str = Field(description="First characters of the current API key")
    operational_webhook_url: str | None
    strict_event_types: StrictEventTypes
    retention_days: int | None = Field(description="null: WEBHOOKD_RETENTION_DAYS")
    portal_frame_ancestors: list[str] | None
    portal_brand_color: str | None
    portal_logo_url: str | None
    delivery_format: DeliveryFormatField
    metadata: dict[str, str] | None
    created_at: dt.datetime

    @classmethod
    def of(cls, tenant: Tenant) -> TenantRead:
        return cls(
            id=format_id(Kind.TENANT, tenant.public_id),
            uid=tenant.uid,
            name=tenant.name,
            email=tenant.email,
            rate_limit=tenant.rate_limit,
            api_key_prefix=tenant.api_key_prefix,
            operational_webhook_url=tenant.operational_webhook_url,
            strict_event_types=tenant.strict_event_types,
            retention_days=tenant.retention_days,
            portal_frame_ancestors=tenant.portal_frame_ancestors,
            portal_brand_color=tenant.portal_brand_color,
            portal_logo_url=tenant.portal_logo_url,
            delivery_format=DeliveryFormat(tenant.delivery_format),
            metadata=tenant.labels,
            created_at=tenant.created_at,
        )


class TenantCreated(TenantRead):
    api_key: str = Field(description="Shown once: only its hash is stored")
    secret_key: str = Field(description="Signing secret (Standard Webhooks whsec_ form)")


class ApiKeyRotated(BaseModel):
    id: TenantId
    api_key: str = Field(description="The new key, shown once; the old key stops working now")
    api_key_prefix: str


class SecretRotate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_period_seconds: int = Field(
        default=86_400,
        ge=0,
        le=7 * 86_400,
        description="How long the current secret keeps signing next to the new one "
        "(0: stop at once)",
    )


class SigningSecret(BaseModel):
    id: TenantId = Field(description="The tenant's id (tnt_…), or the endpoint's (ep_…)")
    secret_key: str = Field(description="The current signing secret (whsec_...)")
    previous_secret_expires_at: dt.datetime | None = Field(
        description="Until then deliveries also carry a signature made with the previous secret"
    )
