"""Retry timing, pure: capped exponential backoff, and the receiver's ``Retry-After``.

With the default settings a delivery is attempted at most 7 times: the first attempt
immediately, then after waits of 1, 2, 4, 8, 16 and 32 seconds
(``backoff_schedule(1, 32, 7)``). How a schedule is applied to a delivery is the endpoint's
policy (``delivery/policy.py``).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def backoff(base_delay: float, max_delay: float, failure: int) -> float:
    """Seconds to wait after failed attempt ``failure`` (1-based):
    ``min(base_delay * 2**(failure-1), max_delay)``."""
    if failure < 1:
        raise ValueError("attempt is 1-based")
    try:
        return min(math.ldexp(base_delay, failure - 1), max_delay)
    except OverflowError:
        return max_delay


def backoff_schedule(base_delay: float, max_delay: float, max_attempts: int) -> tuple[float, ...]:
    """The waits between ``max_attempts`` attempts (``max_attempts - 1`` of them)."""
    if not (base_delay >= 0 and max_delay >= base_delay):  # False for NaN
        raise ValueError("require 0 <= base_delay <= max_delay")
    if max_attempts < 1:
        raise ValueError("max_attempts must be >= 1")
    return tuple(backoff(base_delay, max_delay, n) for n in range(1, max_attempts))


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Parse a Retry-After header value into seconds from ``now`` (never negative).

    Accepts delta-seconds (``"120"``) or an HTTP-date
    (``"Wed, 21 Oct 2015 07:28:00 GMT"``); returns None when missing or unparsable.
    Naive datetimes (``now`` or a ``-0000`` date) are taken as UTC.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
