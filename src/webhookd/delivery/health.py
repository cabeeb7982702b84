"""An endpoint's health, pure: the circuit breaker, 410 Gone and auto-disable.

The state lives on the endpoint row (shared by every delivering process); the delivery
store reads it under the endpoint's row lock, applies :func:`after_results` to the results
of a batch of attempts, and writes it back. :func:`gate` decides what a claim does with a
delivery of the endpoint.

```
            N consecutive failures                cool-down over: one probe
  closed ─────────────────────────▶ open ───────────────────────────▶ half_open
     ▲                               ▲                                   │
     │ success                       └─── probe failed (cool-down × 2) ──┤
     └───────────────────────────────────────────────────────────────────┘
                                                      probe succeeded
  any state ──410──▶ disabled "gone";  failing for auto_disable_after ──▶ disabled "failing"
  disabled ──POST …/enable──▶ closed (what waited is sent)
```
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from webhookd.delivery.policy import Breaker
from webhookd.models import Circuit, DisabledReason, Endpoint

# The endpoint columns that hold its health, in Health's field order.
HEALTH_COLUMNS = (
    Endpoint.circuit,
    Endpoint.circuit_until,
    Endpoint.circuit_cooldown,
    Endpoint.consecutive_failures,
    Endpoint.failing_since,
    Endpoint.disabled_reason,
)


@dataclass(frozen=True, slots=True)
class Health:
    circuit: Circuit = Circuit.CLOSED
    circuit_until: dt.datetime | None = None  # open: until when; half_open: probe deadline
    circuit_cooldown: float | None = None  # the current open period, seconds
    consecutive_failures: int = 0
    failing_since: dt.datetime | None = None  # first failure since the last success
    disabled_reason: DisabledReason | None = None

    @classmethod
    def of(cls, row: Any) -> Health:
        """From a row holding HEALTH_COLUMNS (by name)."""
        reason = row.disabled_reason
        return cls(
            Circuit(row.circuit),
            row.circuit_until,
            row.circuit_cooldown,
            row.consecutive_failures,
            row.failing_since,
            DisabledReason(reason) if reason is not None else None,
        )

    @property
    def passes(self) -> bool:
        """Deliveries go out without looking closer (the usual case)."""
        return self.circuit == Circuit.CLOSED and self.disabled_reason is None

    @property
    def clean(self) -> bool:
        """Nothing to reset: closed, enabled, no failure counted."""
        return self.passes and self.consecutive_failures == 0 and self.failing_since is None

    def values(self) -> dict[str, Any]:
        return {
            Endpoint.circuit.key: self.circuit,
            Endpoint.circuit_until.key: self.circuit_until,
            Endpoint.circuit_cooldown.key: self.circuit_cooldown,
            Endpoint.consecutive_failures.key: self.consecutive_failures,
            Endpoint.failing_since.key: self.failing_since,
            Endpoint.disabled_reason.key: self.disabled_reason,
        }


HEALTHY = Health()


class Result(NamedTuple):
    """What an attempt says about its endpoint."""

    succeeded: bool
    gone: bool  # the endpoint answered 410
    at: dt.datetime  # when the attempt started


class Change(enum.StrEnum):
    OPENED = "open"
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    DISABLED_GONE = "gone"
    DISABLED_FAILING = "failing"


def after_results(
    health: Health, results: Iterable[Result], breaker: Breaker, now: dt.datetime
) -> tuple[Health, list[Change]]:
    """The endpoint's health after these results (in the order the attempts started), and
    the transitions made. A disabled endpoint stays as it is until enabled."""
    changes: list[Change] = []
    for result in results:
        if health.disabled_reason is not None:
            break
        if result.gone:
            health = replace(health, disabled_reason=DisabledReason.GONE)
            changes.append(Change.DISABLED_GONE)
        elif result.succeeded:
            if health.circuit != Circuit.CLOSED:
                changes.append(Change.CLOSED)
            health = HEALTHY
        else:
            failures = health.consecutive_failures + 1
            since = health.failing_since or result.at
            health = replace(health, consecutive_failures=failures, failing_since=since)
            probe_failed = health.circuit == Circuit.HALF_OPEN
            if probe_failed or (health.circuit == Circuit.CLOSED and failures >= breaker.threshold):
                previous = health.circuit_cooldown if probe_failed else None
                cooldown = breaker.next_cooldown(previous)
                health = replace(
                    health,
                    circuit=Circuit.OPEN,
                    circuit_until=now + dt.timedelta(seconds=cooldown),
                    circuit_cooldown=cooldown,
                )
                changes.append(Change.OPENED)
            if (now - since).total_seconds() >= breaker.auto_disable_after:
                health = replace(health, disabled_reason=DisabledReason.FAILING)
                changes.append(Change.DISABLED_FAILING)
    return health, changes


class Gate(enum.Enum):
    GO = "go"  # deliver
    WAIT = "wait"  # disabled: wait (no next attempt) until enabled
    DEFER = "defer"  # circuit open or a probe out: wait until circuit_until
    PROBE = "probe"  # cool-down over: send one delivery as the probe (half-open)


def gate(health: Health, now: dt.datetime) -> Gate:
    """What a claim does with a due delivery of an endpoint in this health."""
    if health.disabled_reason is not None:
        return Gate.WAIT
    if health.circuit == Circuit.CLOSED:
        return Gate.GO
    if health.circuit_until is not None and health.circuit_until > now:
        return Gate.DEFER
    return Gate.PROBE  # open and cooled down, or a probe whose deadline passed


def held(health: Health, now: dt.datetime) -> bool:
    """A delivery created now for this endpoint starts waiting: a claim would only hand it
    back (disabled, or a circuit open and not cooled down)."""
    return gate(health, now) in (Gate.WAIT, Gate.DEFER)


def probing(health: Health, deadline: dt.datetime) -> Health:
    """Half-open: one probe is out until ``deadline`` (then another may go)."""
    return replace(health, circuit=Circuit.HALF_OPEN, circuit_until=deadline)
