from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from webhookd.schemas import NO_NUL_PATTERN, ReadModel

RateLimit = Annotated[
    int, Field(ge=1, le=1_000_000, description="Events per minute (token bucket capacity)")
]
EMAIL_PATTERN = r"^[^@\s\x00]{1,64}@[^@\s\x00]{1,255}\.[^@\s\x00]{1,63}$"


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=NO_NUL_PATTERN, examples=["My Company"])
    email: str = Field(max_length=320, pattern=EMAIL_PATTERN, examples=["webhooks@mycompany.com"])
    rate_limit: RateLimit = 100

    @field_validator("name")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("name must not be blank")
        return value


class TenantUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200, pattern=NO_NUL_PATTERN)
    email: str | None = Field(default=None, max_length=320, pattern=EMAIL_PATTERN)
    rate_limit: RateLimit | None = None


class TenantRead(ReadModel):
    id: int
    name: str
    email: str
    rate_limit: int
    api_key_prefix: str = Field(description="First characters of the current API key")
    created_at: dt.datetime


class TenantCreated(BaseModel):
    id: int
    name: str
    email: str
    rate_limit: int
    api_key: str = Field(description="Shown once: only its hash is stored")
    secret_key: str = Field(description="Signing secret (Standard Webhooks whsec_ form)")
    created_at: dt.datetime


class ApiKeyRotated(BaseModel):
    id: int
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
    id: int
    secret_key: str = Field(description="The current signing secret (whsec_...)")
    previous_secret_expires_at: dt.datetime | None = Field(
        description="Until then deliveries also carry a signature made with the previous secret"
    )
