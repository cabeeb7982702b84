"""Each tenant's event-type catalog as publishing needs it, remembered by this process.

A publish checks its payload against its type's JSON Schema (and, for a tenant with
``strict_event_types``, that the type is in the catalog) before anything is stored. Reading
the catalog for every publish would cost a query each, so a process keeps each tenant's
rules for ``ttl`` seconds (``WEBHOOKD_EVENT_TYPE_CACHE_SECONDS``): a change made through
this process applies to its next publish (the entry is dropped when the change commits);
other API processes follow within ``ttl``. Schemas are compiled once per process
(eventtype/validation.py); a tenant with no event types costs one dictionary lookup.

The names it reads are also the values the ``event_type`` metric label may take
(``metrics.register_event_types``): each tenant's types when its rules are loaded, and the
deployment's catalog (the Svix API's event types) at most once per ``ttl``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from webhookd import metrics
from webhookd.db import after_commit
from webhookd.errors import Unprocessable
from webhookd.eventtype import repository
from webhookd.eventtype.validation import SchemaError, compile_schema, first_violation
from webhookd.logging import log_failure

if TYPE_CHECKING:
    import jsonschema_rs

__all__ = ["EventTypeCatalog", "TenantRules", "catalog_rows"]

log = structlog.get_logger("webhookd.eventtype")

CatalogRows = tuple[bool, list[tuple[str, dict[str, Any] | None, bool]]]
Lookup = Callable[[int | None], Awaitable[CatalogRows | None]]
DEPLOYMENT_TYPES_READ = 1000  # the deployment catalog's names read for the metric label


async def catalog_rows(engine: AsyncEngine, tenant_id: int | None) -> CatalogRows | None:
    """A tenant's strict flag and types (None if the tenant does not exist); for
    ``tenant_id`` None, the deployment's catalog (never strict: it checks no publish)."""
    if tenant_id is not None:
        return await repository.catalog_rows(engine, tenant_id)
    async with AsyncSession(engine) as session:
        rows = await repository.page(
            session, tenant_id=None, include_archived=True, limit=DEPLOYMENT_TYPES_READ, after=None
        )
        return False, [(row.name, row.schema, row.archived) for row in rows]


@dataclass(frozen=True, slots=True)
class TypeRule:
    archived: bool
    validator: jsonschema_rs.Validator | None


@dataclass(frozen=True, slots=True)
class TenantRules:
    strict: bool = False
    types: dict[str, TypeRule] = field(default_factory=dict)

    @classmethod
    def of(cls, rows: CatalogRows) -> TenantRules:
        strict, types = rows
        rules = {}
        for name, schema, archived in types:
            validator = None
            if schema is not None:
                try:
                    validator = compile_schema(schema)
                except SchemaError:  # stored before a stricter webhookd: not enforced
                    validator = None
            rules[name] = TypeRule(archived, validator)
        return cls(strict, rules)

    def check(self, event_type: str, payload: Any) -> None:
        """Raise a 422 if the event may not be published as it is."""
        rule = self.types.get(event_type)
        if rule is None:
            if self.strict:
                raise _refused(
                    "event_type",
                    f"{event_type!r} is not in the tenant's event-type catalog "
                    "(strict_event_types is on)",
                )
            return
        if rule.archived and self.strict:
            raise _refused("event_type", f"{event_type!r} is archived (strict_event_types is on)")
        if rule.validator is not None:
            violation = first_violation(rule.validator, payload)
            if violation is not None:
                where = "payload" + violation.path[1:]
                raise _refused(
                    where,
                    f"does not match the schema of {event_type!r}: {violation.message} "
                    f"(rule {violation.rule!r})",
                    code="schema_violation",
                )


def _refused(where: str, message: str, code: str | None = None) -> Unprocessable:
    error = Unprocessable(
        f"{where}: {message}", fields=[{"field": where, "location": "body", "message": message}]
    )
    if code is not None:
        error.code = code
    return error


NO_RULES = TenantRules()


class EventTypeCatalog:
    MAX_TENANTS = 50_000

    def __init__(
        self, ttl: float, lookup: Lookup, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self._lookup = lookup
        self._clock = clock
        self._entries: dict[int, tuple[TenantRules, float]] = {}
        self._loading: dict[int, asyncio.Future[TenantRules]] = {}
        self._generation = 0  # bumped by forget: a load that began before may be stale
        self._deployment_due = -math.inf  # when to read the deployment's type names again

    async def check(self, tenant_id: int, event_type: str, payload: Any) -> None:
        """Raise a 422 if the tenant's catalog refuses this event."""
        (await self.rules(tenant_id)).check(event_type, payload)

    async def rules(self, tenant_id: int) -> TenantRules:
        entry = self._entries.get(tenant_id)
        if entry is not None and self._clock() < entry[1]:
            return entry[0]
        loading = self._loading.get(tenant_id)
        if loading is None:
            loading = asyncio.get_running_loop().create_future()
            self._loading[tenant_id] = loading
            try:
                loading.set_result(await self._load(tenant_id))
            except BaseException as exc:
                loading.set_exception(exc)
                loading.exception()  # retrieved: waiters (if any) get it too
                raise
            finally:
                del self._loading[tenant_id]
        return await asyncio.shield(loading)

    async def _load(self, tenant_id: int) -> TenantRules:
        generation = self._generation
        rows = await self._lookup(tenant_id)
        rules = NO_RULES if rows is None else TenantRules.of(rows)
        metrics.register_event_types(rules.types)
        await self._read_deployment_types()
        if self.ttl > 0 and generation == self._generation:
            if len(self._entries) >= self.MAX_TENANTS:
                self._entries.clear()
            self._entries[tenant_id] = (rules, self._clock() + self.ttl)
        return rules

    async def _read_deployment_types(self) -> None:
        """The deployment catalog's names for the metric label, at most once per ``ttl``
        (a second when nothing is cached). A failure only delays them to the next time."""
        now = self._clock()
        if now < self._deployment_due:
            return
        self._deployment_due = now + (self.ttl or 1.0)
        try:
            rows = await self._lookup(None)
        except Exception as exc:
            log_failure(log, "eventtype.deployment_catalog_unread", exc)
            return
        if rows is not None:
            metrics.register_event_types(name for name, _, _ in rows[1])

    def forget(self, tenant_id: int) -> None:
        self._generation += 1
        self._entries.pop(tenant_id, None)

    def forget_on_commit(self, session: AsyncSession, tenant_id: int) -> None:
        """Forget the tenant's rules now and once ``session`` commits its change."""
        self.forget(tenant_id)
        after_commit(session, lambda: self.forget(tenant_id))
