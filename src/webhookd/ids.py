"""Public ids: what the API, the webhook headers and the logs show of a row.

Row ids (integers) stay inside the database. Every tenant, endpoint, event, delivery and
dead-letter entry also gets a ULID when it is created: 48 bits of milliseconds then 80
random bits, so ids sort by creation time and never repeat, across databases, restores and
deployments. The database keeps it as a UUID (16 bytes); the API shows it with a prefix
that says what it names, in ULID's Crockford base32: ``dlv_01JEKX6V4W8S8N0C7W0R6FQ2ZB``.
"""

from __future__ import annotations

import enum
import functools
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ulid import ULID

from webhookd.errors import NotFound

T = TypeVar("T")

_BASE32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_RANDOM_MASK = (1 << 80) - 1


class Kind(enum.StrEnum):
    TENANT = "tnt"
    ENDPOINT = "ep"
    EVENT = "evt"
    DELIVERY = "dlv"
    DEAD_LETTER = "dlq"
    JOB = "job"

    @property
    def pattern(self) -> str:
        """A regular expression matching this kind's public ids."""
        return rf"^{self.value}_[0-7][{_BASE32}]{{25}}$"

    def example(self) -> str:
        return f"{self.value}_01JEKX6V4W8S8N0C7W0R6FQ2ZB"


_last = [0, 0]  # the millisecond and the random part of this process's last id


def new_id() -> uuid.UUID:
    """A new ULID, as the UUID the database keeps. Monotonic within the process (the ULID
    spec's variant): ids made in the same millisecond count up from its random part, so
    rows created one after another sort in that order."""
    millis = time.time_ns() // 1_000_000
    if millis <= _last[0]:
        millis, random = _last[0], (_last[1] + 1) & _RANDOM_MASK
    else:
        random = int.from_bytes(os.urandom(10), "big")
    _last[0], _last[1] = millis, random
    return uuid.UUID(int=(millis << 80) | random)


# ULID's text is Crockford base32 of its 128 bits in 26 characters (130 bits, the first two
# always 0): 13 pairs of characters, each 10 bits, looked up in a table of the 1,024 pairs.
_PAIRS = [a + b for a in _BASE32 for b in _BASE32]
_SHIFTS = tuple(range(120, -1, -10))


def format_id(kind: Kind, value: uuid.UUID) -> str:
    n = value.int
    pairs = _PAIRS
    return kind.value + "_" + "".join([pairs[(n >> shift) & 1023] for shift in _SHIFTS])


@functools.lru_cache(maxsize=65_536)
def format_cached(kind: Kind, value: uuid.UUID) -> str:
    """:func:`format_id` for ids shown again and again (a tenant's, an endpoint's)."""
    return format_id(kind, value)


def parse_id(kind: Kind, text: str) -> uuid.UUID | None:
    """The UUID of a public id of this kind, or None if ``text`` is not one."""
    prefix = kind.value + "_"
    if not text.startswith(prefix) or len(text) != len(prefix) + 26:
        return None
    try:
        return ULID.from_str(text[len(prefix) :].upper()).to_uuid()
    except ValueError:
        return None  # not base32, or over 128 bits


async def find_by_public_id(
    kind: Kind, text: str, what: str, find: Callable[[uuid.UUID], Awaitable[T | None]]
) -> T:
    """The object the public id ``text`` names, looked up by ``find``; a 404 that names
    ``what`` when ``text`` is not an id of this kind or names nothing (of the caller's)."""
    public_id = parse_id(kind, text)
    found = None if public_id is None else await find(public_id)
    if found is None:
        raise NotFound(f"{what} {text!r} not found")
    return found
