"""How one endpoint is delivered to: an :class:`EndpointPolicy` value.

Today every endpoint has the policy built from the settings (``WEBHOOKD_RETRY_*``,
``WEBHOOKD_ENDPOINT_CONCURRENCY``, timeouts); an endpoint's own fields will override it.
The delivery lifecycle (``delivery/lifecycle.py``) and the engine read nothing else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from webhookd.config import Settings
from webhookd.delivery.retry import backoff_schedule


@dataclass(frozen=True, slots=True)
class EndpointPolicy:
    retry_schedule: tuple[float, ...]  # seconds to wait after failure 1, 2, ...; then dead
    retry_after_cap: float  # a receiver's Retry-After may lengthen a wait up to this
    max_in_flight: int  # attempts in flight to the endpoint, per delivering process
    request_timeout: float  # seconds for a whole attempt
    connect_timeout: float

    def __post_init__(self) -> None:
        if any(not (d >= 0 and math.isfinite(d)) for d in self.retry_schedule):
            raise ValueError("retry delays must be finite and >= 0")
        if not self.retry_after_cap >= 0:
            raise ValueError("retry_after_cap must be >= 0")
        if self.max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")

    @property
    def max_attempts(self) -> int:
        return len(self.retry_schedule) + 1

    def next_delay(self, attempt: int, *, retry_after: float | None = None) -> float | None:
        """Seconds to wait after failed attempt ``attempt`` (1-based), or None when the
        attempts are exhausted. A receiver's ``retry_after`` (seconds) can lengthen the wait
        up to ``retry_after_cap`` but never shorten it; negative or NaN values are ignored."""
        if attempt < 1:
            raise ValueError("attempt is 1-based")
        if attempt > len(self.retry_schedule):
            return None
        delay = self.retry_schedule[attempt - 1]
        if retry_after is not None and retry_after >= 0:  # False for NaN
            delay = max(delay, min(retry_after, self.retry_after_cap))
        return delay

    @classmethod
    def from_settings(cls, settings: Settings) -> EndpointPolicy:
        return cls(
            retry_schedule=backoff_schedule(
                settings.retry_base_delay, settings.retry_max_delay, settings.max_attempts
            ),
            retry_after_cap=settings.retry_max_delay,
            max_in_flight=settings.endpoint_concurrency,
            request_timeout=settings.request_timeout,
            connect_timeout=settings.connect_timeout,
        )
