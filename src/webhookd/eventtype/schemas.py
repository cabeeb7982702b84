from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from webhookd.models import EventTypeDef
from webhookd.schemas import NO_NUL_PATTERN, EventType

Description = Annotated[str | None, Field(max_length=1000, pattern=NO_NUL_PATTERN)]
Schema = Annotated[
    dict[str, Any],
    Field(
        description="A JSON Schema (draft 2020-12) that the payloads of this type must meet; "
        "publishes that do not are refused with a 422 naming the path and rule. $ref may "
        "only point inside the schema; pattern uses a linear-time regex dialect (no "
        "look-around); format is not asserted.",
        examples=[
            {
                "type": "object",
                "properties": {"amount": {"type": "number", "minimum": 0}},
                "required": ["amount"],
            }
        ],
    ),
]


class EventTypeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: EventType
    description: Description = None
    schema_: Schema | None = Field(default=None, alias="schema")
    archived: bool = False


class EventTypeUpdate(BaseModel):
    """Only the fields present change; ``schema: null`` removes the schema."""

    model_config = ConfigDict(extra="forbid")

    description: Description = None
    schema_: Schema | None = Field(default=None, alias="schema")
    archived: bool | None = None


class EventTypeRead(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    name: str
    description: str | None
    schema_: dict[str, Any] | None = Field(alias="schema")
    archived: bool = Field(
        description="Archived types are kept (and still checked against their schema) but "
        "hidden from listings unless include_archived; a tenant with strict_event_types "
        "may not publish them"
    )
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, row: EventTypeDef) -> EventTypeRead:
        return cls(
            name=row.name,
            description=row.description,
            schema=row.schema,
            archived=row.archived,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
