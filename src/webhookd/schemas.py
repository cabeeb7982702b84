"""Schemas shared by several domains: pagination and JSON limits."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field

from webhookd.errors import Unprocessable

T = TypeVar("T")

MAX_JSON_DEPTH = 32

# Text stored in a database column: PostgreSQL text cannot hold U+0000 (the insert would
# fail, a 500), so free text is refused with a 422 when it contains one.
NO_NUL_PATTERN = r"^[^\x00]*$"
EVENT_TYPE_PATTERN = r"^[A-Za-z0-9_.\-]+$"
EventType = Annotated[
    str,
    Field(
        min_length=1,
        max_length=255,
        pattern=EVENT_TYPE_PATTERN,
        description="Letters, digits, '_', '.' and '-', e.g. user.created",
        examples=["user.created"],
    ),
]

# Row ids are 64-bit. A bigger number from a client is refused (422) before it reaches the
# database, where SQLite would raise OverflowError (a 500).
MAX_ID = 2**63 - 1
IdPath = Annotated[int, Path(ge=0, le=MAX_ID)]
IdQuery = Annotated[int | None, Query(ge=0, le=MAX_ID)]


class Page(BaseModel, Generic[T]):
    """One page of a list; pass ``next_cursor`` back as ``cursor`` for the next page."""

    items: list[T]
    next_cursor: int | None = None


class ReadModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def json_depth(value: Any) -> int:
    """Nesting depth of a decoded JSON value (scalars are 0), computed without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        depth += 1
        if depth > deepest:
            deepest = depth
            if deepest > MAX_JSON_DEPTH:
                return deepest
        stack.extend((child, depth) for child in children if isinstance(child, dict | list))
    return deepest


def changes(data: BaseModel, *, not_null: tuple[str, ...]) -> dict[str, Any]:
    """The fields a PATCH body sets; an explicit null on a field that cannot be empty is a 422."""
    values = data.model_dump(exclude_unset=True)
    nulls = [name for name in not_null if name in values and values[name] is None]
    if nulls:
        raise Unprocessable(
            f"{', '.join(nulls)} may not be null",
            fields=[{"field": n, "location": "body", "message": "may not be null"} for n in nulls],
        )
    return values
