"""Accepting a published event, and the fast path that serves well-formed publishes.

``accept`` is what ``POST /api/v1/events`` does once the request is parsed and the tenant
known (the key's own, or the one the operator's request names): take a token, hand the
event to the group commit, answer after its commit (which also wakes the delivery engine).
The FastAPI route calls it, and so does :class:`IngestFastPath`.

:class:`IngestFastPath` is an ASGI middleware for the hottest request of the API. It serves
a publish itself only when everything about it is already known to be right: a JSON body
within the size limit that validates as :class:`EventCreate`, and an API key this process
authenticated a moment ago (the key cache), or the admin key with a tenant named in the
body that this process looked up a moment ago. Anything else (a missing, wrong or uncached
key, a throttled address, a body that does not parse or validate, a chunked body, another
content type) is handed, body included, to the FastAPI route, which answers exactly as it
would; the OpenAPI schema is the route's. The fast path skips FastAPI's routing, dependency
solving and response re-validation (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import orjson
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from webhookd import metrics
from webhookd.api.deps import app_config, app_runtime, tenant_named
from webhookd.api.errors import app_error_response, unavailable_response
from webhookd.api.route import is_json
from webhookd.db import database_unavailable
from webhookd.errors import AppError, NotFound, field_error
from webhookd.event.batcher import TenantGone
from webhookd.event.schemas import EventAccepted, EventCreate
from webhookd.runtime import Runtime
from webhookd.schemas import inexact_integer
from webhookd.security import hash_api_key, keys_equal
from webhookd.tenant.keycache import REF_PREFIX, AuthTenant

PATH = "/api/v1/events"


async def publishing_tenant(
    runtime: Runtime, caller: AuthTenant | None, data: EventCreate
) -> AuthTenant:
    """The tenant a publish is for: the key's own (``caller``), or, with the admin key
    (``caller`` None), the one the body names by ``tenant_id`` or ``uid``."""
    ref = data.tenant_ref
    if caller is not None:
        if ref is not None and not caller.is_named_by(ref):
            raise NotFound(f"tenant {ref!r} not found")
        return caller
    if ref is None:
        raise field_error("tenant_id", "publishing with the admin key names the tenant")
    return await tenant_named(runtime, ref)


async def accept(
    runtime: Runtime, tenant: AuthTenant, data: EventCreate
) -> tuple[int, bytes, dict[str, str]]:
    """Publish for an authenticated tenant: (status, JSON body, rate-limit headers).

    Raises :class:`AppError`: 429 over the tenant's rate limit, 422 if the tenant's
    event-type catalog refuses the event (schema, strict_event_types) and 401 if the tenant
    was deleted since its key was cached."""
    accepted, headers = await publish_for(runtime, tenant, data)
    body = accepted.__pydantic_serializer__.to_json(accepted)
    return (200 if accepted.duplicate else 202), body, headers


async def publish_for(
    runtime: Runtime, tenant: AuthTenant, data: EventCreate
) -> tuple[EventAccepted, dict[str, str]]:
    """:func:`accept`'s publish, before the answer is serialised (the Svix API's too): the
    accepted event and the rate-limit headers."""
    decision = await runtime.rate_limiter.acquire(f"tenant:{tenant.ref}", tenant.rate_limit)
    if not decision.allowed:
        metrics.rate_limit_hit(tenant.ref)
        raise AppError(
            f"rate limit of {tenant.rate_limit} events/minute exceeded",
            status_code=429,
            code="rate_limited",
            headers=decision.headers,
        )
    await runtime.catalog.check(tenant.id, data.event_type, data.payload)
    try:
        accepted = await runtime.publisher.publish(tenant.id, data)  # answered after commit
    except TenantGone:
        runtime.key_cache.forget_tenant(tenant.id)
        raise
    if not accepted.duplicate:
        metrics.event_published(tenant.ref, data.event_type)
    return accepted, decision.headers


class IngestFastPath:
    def __init__(self, app: ASGIApp, *, max_body_size: int) -> None:
        self.app = app
        self.max_body_size = max_body_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        api_key, admin_key, size, content_type = None, None, -1, None
        for name, value in scope["headers"]:  # the first of each, as Starlette reads them
            if name == b"x-api-key" and api_key is None:
                api_key = value.decode("latin-1")
            elif name == b"x-admin-key" and admin_key is None:
                admin_key = value.decode("latin-1")
            elif name == b"content-length" and size < 0:
                size = int(value) if value.isdigit() else 0
            elif name == b"content-type" and content_type is None:
                content_type = value.decode("latin-1")
        if not (api_key or admin_key) or not content_type or not 0 < size <= self.max_body_size:
            await self.app(scope, receive, send)  # the route answers what this does not know
            return
        body = await _read_body(receive)
        if body is None:
            return  # the client went away before sending its body
        runtime = app_runtime(scope["app"])
        data = _parse(body) if is_json(content_type) else None
        tenant = self._tenant(scope, runtime, api_key, admin_key, data) if data else None
        if tenant is None or data is None:
            await self.app(scope, _replay(body, receive), send)
            return
        try:
            status, content, headers = await accept(runtime, tenant, data)
        except AppError as exc:
            await app_error_response(exc)(scope, receive, send)
            return
        except Exception as exc:
            if not database_unavailable(exc):
                raise  # a bug: the app's 500 handler
            await unavailable_response(exc)(scope, receive, send)
            return
        raw = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(content))]
        raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": content})

    @staticmethod
    def _tenant(
        scope: Scope,
        runtime: Runtime,
        api_key: str | None,
        admin_key: str | None,
        data: EventCreate,
    ) -> AuthTenant | None:
        """The tenant to publish for, if everything about it is known in this process: a
        tenant key authenticated a moment ago (naming no other tenant), or the admin key
        and a tenant the operator named a moment ago. Else None: the route authenticates,
        looks up, counts failures and answers 401/404/429 itself."""
        client = scope.get("client")
        if runtime.auth_throttle.blocked_for(client[0] if client else "unknown") > 0:
            return None
        ref = data.tenant_ref
        if admin_key:  # the admin key wins over an API key, as in the route
            if ref is None or not keys_equal(admin_key, app_config(scope["app"]).admin_key):
                return None
            return runtime.key_cache.get(REF_PREFIX + ref)
        assert api_key is not None
        tenant = runtime.key_cache.get(hash_api_key(api_key, runtime.secrets.pepper))
        if tenant is not None and ref is not None and not tenant.is_named_by(ref):
            return None
        return tenant


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body (its size was checked against the limit); None if the client left."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _parse(body: bytes) -> EventCreate | None:
    if inexact_integer(body) is not None:
        return None  # the route answers the 422 that names the field
    try:
        return EventCreate.model_validate(orjson.loads(body))
    except (orjson.JSONDecodeError, ValidationError, ValueError, TypeError):
        return None  # the route renders the 422 with its field list


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that first hands back the body already read."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
