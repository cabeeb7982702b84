"""Paths with an encoded slash (``%2F``) are refused before routing.

The router matches the decoded path, so ``/api/v1/events/x%2Fdeliveries`` would reach the
deliveries of event ``x``. No id of webhookd may contain ``/`` (event ids refuse it), so an
encoded slash in a path can only name something that does not exist: 404.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from webhookd.api.errors import ORJSONResponse, error_body

MESSAGE = "not found: ids never contain '/', so a path may not hold an encoded one (%2F)"


class EncodedSlashGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and b"%2f" in scope.get("raw_path", b"").lower():
            await ORJSONResponse(error_body("not_found", MESSAGE), status_code=404)(
                scope, receive, send
            )
            return
        await self.app(scope, receive, send)
