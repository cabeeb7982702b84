"""Retry schedule: capped exponential backoff with Retry-After support.

With the default :class:`RetryPolicy` a delivery is attempted at most 7 times: the
first attempt immediately, then after waits of 1, 2, 4, 8, 16 and 32 seconds. After
the 7th failure :func:`next_delay` returns ``None`` and the delivery is dead-lettered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff parameters: ``base_delay * 2**(n-1)`` seconds after failure n, capped."""

    base_delay: float = 1.0
    max_delay: float = 32.0
    max_attempts: int = 7

    def __post_init__(self) -> None:
        """Reject policies that cannot produce a sensible schedule."""
        if not (self.base_delay >= 0 and self.max_delay >= self.base_delay):
            raise ValueError("require 0 <= base_delay <= max_delay")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")


def next_delay(
    policy: RetryPolicy, attempt: int, *, retry_after: float | None = None
) -> float | None:
    """Return the seconds to wait after failed attempt ``attempt`` (1-based), or None.

    ``None`` means the attempts are exhausted (``attempt >= max_attempts``). Otherwise
    the delay is ``min(base_delay * 2**(attempt-1), max_delay)``. A receiver's
    ``retry_after`` (seconds) can lengthen the wait up to ``max_delay`` but never
    shorten it; negative or NaN values are ignored.
    """
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    if attempt >= policy.max_attempts:
        return None
    try:
        delay = min(math.ldexp(policy.base_delay, attempt - 1), policy.max_delay)
    except OverflowError:
        delay = policy.max_delay
    if retry_after is not None and retry_after >= 0:  # False for NaN
        delay = max(delay, min(retry_after, policy.max_delay))
    return delay


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


def schedule(policy: RetryPolicy) -> list[float]:
    """Return the delays after each failed attempt that is followed by a retry."""
    delays = (next_delay(policy, attempt) for attempt in range(1, policy.max_attempts))
    return [d for d in delays if d is not None]
