"""Every error answer of the API in one JSON shape, and the OpenAPI entries that document it.

Shape: ``{"error": {"code", "message", "fields": [{"field", "location", "message"}]}}``.
"""

from __future__ import annotations

from typing import Any

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from webhookd.db import database_unavailable
from webhookd.errors import AppError

log = structlog.get_logger("webhookd.errors")


class ORJSONResponse(JSONResponse):
    """JSON response rendered with orjson (for the handlers below and hand-built replies)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class FieldError(BaseModel):
    field: str = Field(description="The field, dotted for nested ones (e.g. payload.user)")
    location: str = Field(description="body, query, path or header")
    message: str


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, machine-readable: not_found, validation_error, ...")
    message: str
    fields: list[FieldError] = Field(
        default_factory=list,
        description="One entry per invalid field; present only when some field is to blame",
    )


class ErrorBody(BaseModel):
    """Every error answer of the API has this shape."""

    error: ErrorDetail


_ERROR_DESCRIPTIONS = {
    401: "Missing or invalid key (unauthorized)",
    404: "No such object, or it belongs to another tenant (not_found)",
    409: "Conflicts with the object's state or a limit (conflict)",
    413: "Request body over the size limit (payload_too_large)",
    415: "Request body is not JSON (unsupported_media_type)",
    422: "Invalid path, query or body; `fields` names the culprits (validation_error)",
    429: "Too many requests: over the tenant's rate limit (rate_limited) or too many failed "
    "authentications from this address (auth_throttled); see Retry-After",
    503: "The database is unavailable, e.g. restarting (database_unavailable; see "
    "Retry-After), or, from /ready, not ready (not_ready)",
}
_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these error statuses, each an :class:`ErrorBody`."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": ErrorBody, "description": _ERROR_DESCRIPTIONS[status]}
        if status in (429, 503):
            entry["headers"] = _RETRY_AFTER
        responses[status] = entry
    return responses


def error_body(
    code: str, message: str, fields: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"error": error}


def _field_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    fields = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ())]
        location = loc[0] if loc else "body"
        field = ".".join(loc[1:]) or location
        message = str(err.get("msg", "invalid value"))
        ctx = err.get("ctx") or {}
        if err.get("type") == "json_invalid" and "error" in ctx:
            field, message = "body", f"request body is not valid JSON: {ctx['error']}"
        fields.append({"field": field, "location": location, "message": message})
    return fields


def app_error_response(exc: AppError) -> ORJSONResponse:
    return ORJSONResponse(
        error_body(exc.code, exc.message, exc.fields),
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def _app_error(_request: Request, exc: Exception) -> ORJSONResponse:
    assert isinstance(exc, AppError)
    return app_error_response(exc)


async def _validation_error(_request: Request, exc: Exception) -> ORJSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = _field_errors(exc)
    summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5])
    return ORJSONResponse(
        error_body("validation_error", f"invalid request: {summary}", fields), status_code=422
    )


_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


async def _http_error(_request: Request, exc: Exception) -> ORJSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return ORJSONResponse(
        error_body(code, message),
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


def unavailable_response(exc: BaseException) -> ORJSONResponse:
    log.warning("request.database_unavailable", error=type(exc).__name__)
    return ORJSONResponse(
        error_body("database_unavailable", "the database is unavailable; retry shortly"),
        status_code=503,
        headers={"Retry-After": "1"},
    )


async def _unhandled(request: Request, exc: Exception) -> ORJSONResponse:
    """A database outage is a 503 with Retry-After, logged once without a traceback;
    anything else is a bug (500)."""
    if database_unavailable(exc):
        return unavailable_response(exc)
    log.exception("request.unhandled_error", path=request.url.path, method=request.method)
    return ORJSONResponse(error_body("internal_error", "internal server error"), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _unhandled)
    app.add_exception_handler(ConnectionError, _unhandled)
    app.add_exception_handler(Exception, _unhandled)
