"""How one endpoint is delivered to: an :class:`EndpointPolicy` value.

The default policy is built from the settings (``WEBHOOKD_RETRY_*``,
``WEBHOOKD_MAX_RETRY_AFTER``, ``WEBHOOKD_BREAKER_*``, ``WEBHOOKD_ENDPOINT_CONCURRENCY``,
timeouts); an endpoint's own ``retry_schedule`` replaces the default schedule
(:meth:`EndpointPolicy.for_schedule`). The delivery lifecycle (``delivery/lifecycle.py``),
the endpoint health rules (``delivery/health.py``) and the engine read nothing else.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace

from webhookd.config import Settings
from webhookd.delivery.retry import backoff_schedule


@dataclass(frozen=True, slots=True)
class Breaker:
    """The circuit breaker and auto-disable rules (docs/DELIVERY.md)."""

    threshold: int = 5  # consecutive failures that open the circuit
    cooldown: float = 30.0  # seconds of the first open period
    max_cooldown: float = 600.0  # each reopening doubles the period up to this
    auto_disable_after: float = 432_000.0  # seconds failing without a success: disabled

    def next_cooldown(self, previous: float | None) -> float:
        """The open period after ``previous`` (None: the circuit was closed)."""
        if previous is None:
            return min(self.cooldown, self.max_cooldown)
        return min(max(previous * 2, self.cooldown), self.max_cooldown)


DEFAULT_BREAKER = Breaker()


@dataclass(frozen=True, slots=True)
class EndpointPolicy:
    retry_schedule: tuple[float, ...]  # seconds to wait after failure 1, 2, ...; then dead
    retry_after_cap: float  # a receiver's Retry-After may lengthen a wait up to this
    max_in_flight: int  # attempts in flight to the endpoint, per delivering process
    request_timeout: float  # seconds for a whole attempt
    connect_timeout: float
    breaker: Breaker = field(default=DEFAULT_BREAKER)

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

    def for_schedule(self, schedule: tuple[float, ...] | None) -> EndpointPolicy:
        """This policy with an endpoint's own retry schedule (None: this one's)."""
        if schedule is None or schedule == self.retry_schedule:
            return self
        return _with_schedule(self, schedule)

    @classmethod
    def from_settings(cls, settings: Settings) -> EndpointPolicy:
        return cls(
            retry_schedule=backoff_schedule(
                settings.retry_base_delay, settings.retry_max_delay, settings.max_attempts
            ),
            retry_after_cap=settings.max_retry_after,
            max_in_flight=settings.endpoint_concurrency,
            request_timeout=settings.request_timeout,
            connect_timeout=settings.connect_timeout,
            breaker=Breaker(
                threshold=settings.breaker_threshold,
                cooldown=settings.breaker_cooldown,
                max_cooldown=settings.breaker_max_cooldown,
                auto_disable_after=settings.auto_disable_after,
            ),
        )


@functools.lru_cache(maxsize=1024)
def _with_schedule(policy: EndpointPolicy, schedule: tuple[float, ...]) -> EndpointPolicy:
    return replace(policy, retry_schedule=schedule)
