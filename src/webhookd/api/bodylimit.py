"""Request body size limit that answers in the API's JSON error shape.

Starlette's limiter (FastAPI's ``max_body_size``) replaces the response to a request whose
Content-Length is over the limit with a plain-text 413, whatever the app rendered.
"""

from __future__ import annotations

from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from webhookd.api.errors import ORJSONResponse, error_body


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_size: int) -> None:
        self.app = app
        self.max_body_size = max_body_size
        self.message = f"request body is larger than {max_body_size} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_size:
            response = ORJSONResponse(
                error_body("payload_too_large", self.message), status_code=413
            )
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            # Bodies without a Content-Length (chunked) are counted as they arrive; the
            # route's body read raises and the app's handler renders the 413.
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_size:
                    raise HTTPException(status_code=413, detail=self.message)
            return message

        await self.app(scope, limited_receive, send)
