"""Prometheus metrics: module constants recorded at the edges; the brief's names as written."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

EVENTS_PUBLISHED = Counter(
    "webhook_events_published",
    "Events accepted by POST /api/v1/events (duplicates excluded).",
    ["tenant", "event_type"],
)
DELIVERY_SUCCESS = Counter(
    "webhook_delivery_success",
    "Delivery attempts answered with a 2xx.",
    ["tenant"],
)
DELIVERY_FAILURE = Counter(
    "webhook_delivery_failure",
    "Delivery attempts that failed (non-2xx, timeout, connection or TLS error, refused target).",
    ["tenant", "reason"],
)
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
DELIVERY_DURATION = Histogram(
    "webhook_delivery_duration_seconds",
    "Duration of one delivery attempt (request sent to response read).",
    ["tenant"],
    buckets=DURATION_BUCKETS,
)
DLQ_SIZE = Gauge("webhook_dlq_size", "Unresolved entries in the dead-letter queue.")
RATE_LIMIT_HITS = Counter(
    "webhook_rate_limit_hits",
    "Publish requests refused with 429 by the per-tenant rate limit.",
    ["tenant"],
)
DELIVERY_ATTEMPTS = Counter(
    "webhook_delivery_attempts",
    "Delivery attempts by attempt number within the retry cycle (the retry distribution).",
    ["attempt"],
)
DEAD_LETTERED = Counter(
    "webhook_dead_lettered",
    "Deliveries moved to the dead-letter queue after their last failed attempt.",
    ["tenant"],
)
DELIVERIES_DUE = Gauge(
    "webhook_deliveries_due",
    "Deliveries whose next attempt is due now and not yet claimed (the backlog).",
)
DELIVERIES_IN_FLIGHT = Gauge(
    "webhook_deliveries_in_flight", "Delivery attempts in progress in this process."
)
RATE_LIMITER_ERRORS = Counter(
    "webhook_rate_limiter_errors",
    "Rate-limit checks that failed because Redis was unreachable, too slow or erroring.",
)
BROKER_PUBLISH_FAILURES = Counter(
    "webhook_broker_publish_failures",
    "Delivery wake-ups that could not be sent to the broker (workers poll for the rows).",
)

DELIVERIES_LEASED = Counter(
    "webhook_deliveries_leased",
    "Deliveries sent out for an attempt, by how their engine got them: claim (a claim "
    "transaction of the delivering process) or publish (leased in the publish transaction to "
    "the engine of the process that published them, when it had room and nothing else was "
    "due).",
    ["via"],
)
LEASED_BY_CLAIM = DELIVERIES_LEASED.labels(via="claim")
LEASED_AT_PUBLISH = DELIVERIES_LEASED.labels(via="publish")

# Endpoint policy (docs/DELIVERY.md): no per-endpoint label, so their number stays fixed.
DELIVERIES_THROTTLED = Counter(
    "webhook_deliveries_throttled",
    "Claimed deliveries handed back without an attempt, by reason: rate_limit (endpoint rate "
    "limit), circuit_open (breaker open or a probe out), disabled (endpoint disabled), fifo "
    "(waiting for the delivery before it), busy (its endpoint held by another process's "
    "transaction for a moment).",
    ["reason"],
)
BREAKER_TRANSITIONS = Counter(
    "webhook_breaker_transitions",
    "Endpoint circuit breaker transitions, by the state entered (open, half_open, closed).",
    ["to"],
)
ENDPOINTS_DISABLED = Counter(
    "webhook_endpoints_disabled",
    "Endpoints disabled by webhookd, by reason (gone: answered 410; failing: no success for "
    "WEBHOOKD_AUTO_DISABLE_AFTER).",
    ["reason"],
)
# Retention and background jobs (docs/RECOVERY.md).
PURGED_ROWS = Counter(
    "webhook_purged_rows",
    "Rows deleted by the retention purge, by table (events, deliveries, attempts, "
    "dead_letters, jobs).",
    ["table"],
)
JOB_ITEMS = Counter(
    "webhook_job_items",
    "Items handled by background jobs, by kind (recover, retry_dead_letters) and result "
    "(requeued: sent again; skipped: no longer dead).",
    ["kind", "result"],
)
for _table in ("events", "deliveries", "attempts", "dead_letters", "jobs"):
    PURGED_ROWS.labels(table=_table)
for _kind in ("recover", "retry_dead_letters"):
    for _result in ("requeued", "skipped"):
        JOB_ITEMS.labels(kind=_kind, result=_result)
for _reason in ("rate_limit", "circuit_open", "disabled", "fifo", "busy"):
    DELIVERIES_THROTTLED.labels(reason=_reason)
for _state in ("open", "half_open", "closed"):
    BREAKER_TRANSITIONS.labels(to=_state)
for _reason in ("gone", "failing"):
    ENDPOINTS_DISABLED.labels(reason=_reason)


OTHER = "other"  # the label value of what is over a label's budget


class LabelBudget:
    """The values one label may take in this process: the first ``limit`` distinct values
    get a series of their own, every later one counts as ``other``. The registry keeps
    every series it ever saw, so this is what bounds the size of ``/metrics``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._admitted: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._admitted:
            return value
        if len(self._admitted) < self.limit:
            self._admitted.add(value)
            return value
        return OTHER


_tenants = LabelBudget(1000)
_per_tenant = True
# Event types that keep their name as a label value: those of a catalog (a tenant's or the
# deployment's) that this process has read, at most ``_max_event_types`` of them; any other
# type a publisher sends counts as ``other``.
_catalog_types: set[str] = set()
_max_event_types = 50


def configure(*, tenant_label: str, max_tenants: int, max_event_types: int) -> None:
    """Apply the settings (``WEBHOOKD_METRICS_*``), with fresh budgets."""
    global _per_tenant, _tenants, _catalog_types, _max_event_types
    _per_tenant = tenant_label == "id"
    _tenants = LabelBudget(max_tenants)
    _catalog_types = set()
    _max_event_types = max_event_types
    for cache in (_published_children, _tenant_children, _attempt_children):
        cache.clear()


def register_event_types(names: Iterable[str]) -> None:
    """Event types of a catalog just read (eventtype/catalog.py): they keep their name as
    the ``event_type`` label from now on, within the budget. Called once per catalog load,
    never per publish; a type removed from its catalog keeps its series (as the registry
    does)."""
    added = False
    for name in names:
        if name not in _catalog_types and len(_catalog_types) < _max_event_types:
            _catalog_types.add(name)
            added = True
    if added:
        _published_children.clear()  # a child cached as ``other`` may be the type's own now


def event_type_label(event_type: str) -> str:
    """The ``event_type`` label value: the type if it is in a catalog, else ``other``."""
    return event_type if event_type in _catalog_types else OTHER


def tenant_label(tenant: str) -> str:
    """A tenant's id (``tnt_…``), ``other`` past the budget, or ``all`` when per-tenant
    series are off."""
    return _tenants(tenant) if _per_tenant else "all"


# Child lookups (``.labels(...)``) cost more than the increment: the hot paths keep them
# (caches only: the label budgets above bound the series).
_published_children: dict[tuple[str, str], Any] = {}
_tenant_children: dict[tuple[Any, str], Any] = {}
_attempt_children: dict[str, tuple[Any, Any]] = {}
_MAX_CHILDREN = 10_000


def _child(metric: Any, tenant: str) -> Any:
    child = _tenant_children.get((metric, tenant))
    if child is None:
        if len(_tenant_children) >= _MAX_CHILDREN:
            _tenant_children.clear()
        child = metric.labels(tenant=tenant_label(tenant))
        _tenant_children[(metric, tenant)] = child
    return child


def event_published(tenant: str, event_type: str) -> None:
    child = _published_children.get((tenant, event_type))
    if child is None:
        if len(_published_children) >= _MAX_CHILDREN:
            _published_children.clear()
        child = EVENTS_PUBLISHED.labels(
            tenant=tenant_label(tenant), event_type=event_type_label(event_type)
        )
        _published_children[(tenant, event_type)] = child
    child.inc()


def rate_limit_hit(tenant: str) -> None:
    _child(RATE_LIMIT_HITS, tenant).inc()


def dead_lettered(tenant: str) -> None:
    _child(DEAD_LETTERED, tenant).inc()


@functools.cache
def _attempt_number(number: int) -> Any:
    return DELIVERY_ATTEMPTS.labels(attempt=str(number))


def attempt_finished(tenant: str, attempt_number: int, seconds: float, failure: str | None) -> None:
    """One delivery attempt: its duration, its number, and success or the failure's kind."""
    children = _attempt_children.get(tenant)
    if children is None:
        if len(_attempt_children) >= _MAX_CHILDREN:
            _attempt_children.clear()
        label = tenant_label(tenant)
        children = (DELIVERY_DURATION.labels(tenant=label), DELIVERY_SUCCESS.labels(tenant=label))
        _attempt_children[tenant] = children
    duration, success = children
    duration.observe(seconds)
    _attempt_number(attempt_number).inc()
    if failure is None:
        success.inc()
    else:
        DELIVERY_FAILURE.labels(tenant=tenant_label(tenant), reason=failure).inc()


def totals() -> dict[str, Any]:
    """This process's counters summed over their labels: events published, attempts that
    succeeded and failed, and the attempt-duration histogram (cumulative count per bucket
    of DURATION_BUCKETS, then +Inf). What the console's charts are drawn from."""
    found: dict[str, Any] = {"events": 0.0, "succeeded": 0.0, "failed": 0.0}
    buckets = [0.0] * (len(DURATION_BUCKETS) + 1)
    for key, metric in (
        ("events", EVENTS_PUBLISHED),
        ("succeeded", DELIVERY_SUCCESS),
        ("failed", DELIVERY_FAILURE),
    ):
        for family in metric.collect():
            found[key] += sum(s.value for s in family.samples if s.name.endswith("_total"))
    for family in DELIVERY_DURATION.collect():
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                bound = sample.labels["le"]
                index = (
                    len(DURATION_BUCKETS)
                    if bound == "+Inf"
                    else DURATION_BUCKETS.index(float(bound))
                )
                buckets[index] += sample.value
    found["buckets"] = buckets
    return found
