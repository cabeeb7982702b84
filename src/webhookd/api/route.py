"""API route class: request bodies must be JSON and are parsed with orjson.

orjson rejects what the standard library lets through and could not be stored or sent as
valid JSON later (NaN, Infinity, lone surrogates), and is several times faster. An integer
orjson cannot keep exact (beyond 64 bits) is refused with a 422 naming its field rather
than delivered changed.

The route class also documents the errors every API route can answer (in the JSON error
shape), so the OpenAPI schema lists them for every route, including routes added later.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute

from webhookd.api.errors import error_responses
from webhookd.errors import AppError
from webhookd.schemas import check_exact_integers

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def api_error_responses(path: str, methods: set[str] | list[str] | None) -> dict[int | str, Any]:
    """The errors an API route can answer: every API route authenticates (401, and 429 once
    an address failed too often) and validates its input (422); one with path parameters
    answers 404 for unknown (or other tenants') ids; one that takes a body answers 413 and 415;
    any answers 503 while the database is unreachable.
    """
    statuses = [401, 422, 429, 503]
    if "{" in path:
        statuses.append(404)
    if BODY_METHODS & {m.upper() for m in methods or ()}:
        statuses += [413, 415]
    return error_responses(*sorted(statuses))


def is_json(content_type: str) -> bool:
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
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        # A route's own entry for a status wins, field by field (e.g. its description).
        responses = api_error_responses(path, kwargs.get("methods"))
        for status, entry in (kwargs.get("responses") or {}).items():
            responses[status] = {**responses.get(status, {}), **entry}
        super().__init__(path, endpoint, **{**kwargs, "responses": responses})

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def orjson_handler(request: Request) -> Response:
            content_type = request.headers.get("content-type")
            if request.method in BODY_METHODS and content_type and not is_json(content_type):
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
            orjson_request = OrjsonRequest(request.scope, request.receive, request._send)
            if request.method in BODY_METHODS and content_type:
                check_exact_integers(await orjson_request.body())  # 422 names the field
            return await handler(orjson_request)

        return orjson_handler
