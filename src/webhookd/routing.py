"""API route class: request bodies must be JSON and are parsed with orjson.

orjson rejects what the standard library lets through and could not be stored or sent as
valid JSON later (NaN, Infinity, lone surrogates), and is several times faster.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute

from webhookd.errors import AppError

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class OrjsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = orjson.loads(await self.body())
        return self._json


class OrjsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def orjson_handler(request: Request) -> Response:
            content_type = request.headers.get("content-type")
            if request.method in BODY_METHODS and content_type and not _is_json(content_type):
                raise AppError(
                    f"body must be JSON (Content-Type: application/json), not {content_type!r}",
                    status_code=415,
                    code="unsupported_media_type",
                    fields=[
                        {
                            "field": "content-type",
                            "location": "header",
                            "message": "must be application/json",
                        }
                    ],
                )
            return await handler(OrjsonRequest(request.scope, request.receive, request._send))

        return orjson_handler
