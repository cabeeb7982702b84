"""A Svix-compatible API (issue 17): the part of Svix's API v1 its official SDKs use, on
the same server, over the same services as the native API (docs/MIGRATING-FROM-SVIX.md)."""

from __future__ import annotations

from webhookd.svix.app_routes import router as app_router
from webhookd.svix.endpoint_routes import router as endpoint_router
from webhookd.svix.message_routes import router as message_router
from webhookd.svix.other_routes import router as other_router
from webhookd.svix.recovery_routes import router as recovery_router

routers = (app_router, endpoint_router, message_router, other_router, recovery_router)
