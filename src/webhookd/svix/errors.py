"""Errors as Svix answers them: ``{"code", "detail"}``, and a 422 whose ``detail`` is a list
of ``{"loc", "msg", "type"}`` (what the SDKs parse into HttpError / HTTPValidationError).

The Svix routes use :class:`SvixRoute`, which renders the errors raised while solving a
route (authentication, validation, the services' errors) in this shape; anything else (an
unknown path, the body limit) keeps the native shape, also JSON. A 5xx stays what the app's
handlers make of it: the SDKs retry those, so they mean a server fault only.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError

from webhookd.api.errors import ORJSONResponse
from webhookd.api.route import OrjsonRoute
from webhookd.errors import AppError

# webhookd's codes → Svix's, where Svix has its own name for them.
_CODES = {401: "authentication_failed", 404: "not_found", 409: "conflict"}


def svix_error(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> ORJSONResponse:
    return ORJSONResponse({"code": code, "detail": detail}, status_code=status, headers=headers)


def validation_error(detail: list[dict[str, Any]]) -> ORJSONResponse:
    return ORJSONResponse({"detail": detail}, status_code=422)


def _from_app_error(exc: AppError) -> ORJSONResponse:
    if exc.status_code == 422:
        fields = exc.fields or [{"field": "body", "location": "body", "message": exc.message}]
        return validation_error(
            [
                {
                    "loc": [f["location"], *f["field"].split(".")],
                    "msg": f["message"],
                    "type": exc.code,
                }
                for f in fields
            ]
        )
    code = _CODES.get(exc.status_code, exc.code)
    return svix_error(exc.status_code, code, exc.message, exc.headers)


def _from_validation(exc: RequestValidationError | ValidationError) -> ORJSONResponse:
    """A request that did not validate; or a body the facade turned into a native one that
    did not (its fields are the body's, named from ``body``)."""
    detail = []
    for err in exc.errors():
        ctx = err.get("ctx") or {}
        msg = str(err.get("msg", "invalid value"))
        if err.get("type") == "json_invalid" and "error" in ctx:
            msg = f"request body is not valid JSON: {ctx['error']}"
        loc = [str(p) for p in err.get("loc", ())]
        if isinstance(exc, ValidationError):
            loc = ["body", *loc]
        detail.append({"loc": loc, "msg": msg, "type": err.get("type")})
    return validation_error(detail)


class SvixError(BaseModel):
    """Svix's error answer."""

    code: str = Field(description="authentication_failed, forbidden, not_found, conflict, ...")
    detail: str


class SvixValidationItem(BaseModel):
    loc: list[str] = Field(description='Where: ["body", "url"], ["query", "limit"], ...')
    msg: str
    type: str


class SvixValidationError(BaseModel):
    detail: list[SvixValidationItem]


_DESCRIPTIONS = {
    401: "Missing or invalid bearer token (authentication_failed)",
    403: "Only the admin key may do this (forbidden)",
    404: "No such object, or another application's (not_found)",
    409: "Conflicts with an object's id, uid or name (conflict)",
    429: "Over the application's rate limit, or too many failed authentications",
}


def svix_error_responses(path: str, methods: set[str] | list[str] | None) -> dict[int | str, Any]:
    """The errors a Svix route answers in Svix's shape (the others, 413 and 503, keep the
    native one: they are answered before the route, or by the app's handlers)."""
    writes = {"POST", "PUT", "PATCH"} & {m.upper() for m in methods or ()}
    statuses = [401, 403, 429] + ([404] if "{" in path else []) + ([409] if writes else [])
    responses: dict[int | str, Any] = {
        status: {"model": SvixError, "description": _DESCRIPTIONS[status]} for status in statuses
    }
    responses[422] = {"model": SvixValidationError, "description": "Invalid input"}
    if writes:
        responses[415] = {"model": SvixError, "description": "Body is not JSON"}
    return responses


class SvixRoute(OrjsonRoute):
    """The native route (orjson bodies, JSON only), with errors in Svix's shape."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        responses = svix_error_responses(path, kwargs.get("methods"))
        for status, entry in (kwargs.get("responses") or {}).items():
            responses[status] = {**responses.get(status, {}), **entry}
        super().__init__(path, endpoint, **{**kwargs, "responses": responses})

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def svix_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except AppError as exc:
                return _from_app_error(exc)
            except (RequestValidationError, ValidationError) as exc:
                return _from_validation(exc)

        return svix_handler
