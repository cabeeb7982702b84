"""Schemas shared by several domains: pagination and JSON limits."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field

from webhookd.errors import Unprocessable, field_error

T = TypeVar("T")

MAX_JSON_DEPTH = 32

# Text stored in a database column: PostgreSQL text cannot hold U+0000 (the insert would
# fail, a 500), so free text is refused with a 422 when it contains one.
NO_NUL_PATTERN = r"^[^\x00]*$"
EVENT_TYPE_PATTERN = r"^[A-Za-z0-9_.\-]+$"
# Ids chosen by clients (event_id): printable ASCII without space and without the
# characters that mean something in a URL path or query, so every id can be used in a
# path as it is: / (a path separator, even as %2F), ? and # (query, fragment), % (escapes)
# and \ (a separator to some clients).
CLIENT_ID_PATTERN = r"^[!\"$&'()*+,\-.0-9:;<=>@A-Z\[\]^_`a-z{|}~]+$"
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

# A public id in a path or a query (webhookd/ids.py): the lookup answers 404 for anything
# that is not one of the caller's objects, so only the shape is checked here.
PublicIdPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=255,
        pattern=NO_NUL_PATTERN,
        examples=["ep_01JEKX6V4W8S8N0C7W0R6FQ2ZB"],
    ),
]


class Page(BaseModel, Generic[T]):
    """One page of a list, newest first; pass ``next_cursor`` back as ``cursor`` for the
    next page (null: this is the last one)."""

    items: list[T]
    next_cursor: str | None = Field(
        default=None, description="Opaque: pass it back as it is", examples=["c1.AAAAAAAAAGQ"]
    )


# Pagination cursors are opaque to clients: a version tag and the last row's position.
_CURSOR = re.compile(r"^c1\.([A-Za-z0-9_-]{11})$")


def encode_cursor(position: int) -> str:
    return "c1." + base64.urlsafe_b64encode(position.to_bytes(8, "big")).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    """The position of a cursor given back by the client; 422 if it is not one of ours."""
    if cursor is None:
        return None
    match = _CURSOR.match(cursor)
    if match is None:
        raise field_error("cursor", "not a cursor this API gave out", location="query")
    return int.from_bytes(base64.urlsafe_b64decode(match.group(1) + "="), "big")


def next_cursor(positions: list[int], limit: int) -> str | None:
    """The cursor after a page whose rows have these positions (None: the last page)."""
    return encode_cursor(positions[-1]) if len(positions) == limit and positions else None


CursorQuery = Annotated[
    str | None, Query(max_length=64, description="`next_cursor` of the previous page")
]


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


# JSON integers orjson keeps exact: 64 bits, signed or unsigned. Beyond, it parses a float
# and the payload would be delivered changed (1.2345678901234568e+29).
INT_MIN, INT_MAX = -(2**63), 2**64 - 1
# Every integer outside the range has 19+ digits. A body's digits as "0", the rest as " ":
# a run of 19 is then a substring search (C), five times faster than the regex \d{19}.
_DIGITS_AS_ZERO = bytes(ord("0") if chr(c).isdigit() and c < 128 else ord(" ") for c in range(256))
_LONG_RUN = b"0" * 19


def inexact_integer(body: bytes) -> tuple[str, int] | None:
    """The dotted path and value of the first integer of a JSON body that is outside
    [INT_MIN, INT_MAX] (it could not be kept exact), or None. Costs one translation and one
    substring search for bodies without a run of 19 digits."""
    if _LONG_RUN not in body.translate(_DIGITS_AS_ZERO):
        return None
    try:
        value = json.loads(body)  # the standard library keeps big integers exact
    except (ValueError, RecursionError):
        return None  # not JSON, or too deep: the normal parse reports it
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, bool):
            continue
        if isinstance(node, int):
            if not INT_MIN <= node <= INT_MAX:
                return path, node
        elif isinstance(node, dict):
            stack.extend((v, f"{path}.{k}" if path else str(k)) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, f"{path}.{i}" if path else str(i)) for i, v in enumerate(node))
    return None


def check_exact_integers(body: bytes) -> None:
    """422 naming the field when an integer of the body cannot be kept exact."""
    found = inexact_integer(body)
    if found is not None:
        path, value = found
        message = (
            f"integer {value} is outside the range webhookd keeps exact "
            f"({INT_MIN} to {INT_MAX}); send it as a string"
        )
        raise Unprocessable(
            f"{path or 'body'}: {message}",
            fields=[{"field": path or "body", "location": "body", "message": message}],
        )
