"""The endpoint form, one for the console and the portal: the fields as typed are read into
the API's body (``EndpointCreate`` / ``EndpointUpdate``), validated by its schema, and the
URL checked by the SSRF guard; what is wrong is told field by field, to show beside each.

A form sends only some of the fields (the console's create form: URL, event types,
description; the portal's forms: also rate limit, filter, headers; the console's policy
form: all of them): a field the form does not have is left out of the body. A field that is
there but empty is unset (null). Custom headers shown as stored (secret values redacted) and
sent back unchanged are left out, and so stay as they are.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError
from starlette.datastructures import FormData

from webhookd.config import Settings
from webhookd.endpoint import service as endpoints
from webhookd.endpoint.schemas import EndpointCreate, EndpointRead, EndpointUpdate
from webhookd.errors import AppError
from webhookd.models import Ordering

CREATE_FIELDS = ("url", "event_types", "description")
PORTAL_FIELDS = (*CREATE_FIELDS, "rate_limit", "filter", "headers")
POLICY_FIELDS = (*CREATE_FIELDS, "retry_schedule", "rate_limit", "ordering", "headers", "filter")
Body = TypeVar("Body", EndpointCreate, EndpointUpdate)
_LIST_SEPARATORS = re.compile(r"[,\s]+")
_PATTERN_HINTS = {
    "event_types": "an event type is letters, digits, '_', '.', '-', or a prefix ending in '.*'",
    "headers": "a header name is letters, digits and !#$%&'*+-.^_`|~ (no spaces)",
}


def form_texts(form: FormData, fields: tuple[str, ...]) -> dict[str, str]:
    """The submitted text of each field ("" when absent), as typed (to show it again)."""
    texts: dict[str, str] = {}
    for name in fields:
        value = form.get(name)
        texts[name] = value.replace("\r\n", "\n").strip() if isinstance(value, str) else ""
    return texts


def items(text: str) -> list[str]:
    """A comma- (or space-, or line-) separated list."""
    return [item for item in _LIST_SEPARATORS.split(text) if item]


def number(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else str(value)


def headers_text(headers: dict[str, str] | None) -> str:
    """Custom headers as the form shows them: ``Name: value`` per line (already redacted)."""
    return "\n".join(f"{name}: {value}" for name, value in (headers or {}).items())


def filter_text(value: Any) -> str:
    return json.dumps(value, indent=2) if value is not None else ""


def policy_texts(endpoint: EndpointRead) -> dict[str, str]:
    """The policy form's fields for the endpoint as stored."""
    return {
        "url": endpoint.url,
        "event_types": ", ".join(endpoint.event_types),
        "description": endpoint.description or "",
        "retry_schedule": ", ".join(number(d) for d in endpoint.retry_schedule or []),
        "rate_limit": number(endpoint.rate_limit),
        "ordering": endpoint.ordering.value,
        "headers": headers_text(endpoint.headers),
        "filter": filter_text(endpoint.filter),
    }


def _normalized(text: str) -> str:
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def _parse_headers(text: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line_number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not name:
            raise ValueError(f"line {line_number}: write one header per line as Name: value")
        if name in headers:
            raise ValueError(f"line {line_number}: header {name!r} appears twice")
        headers[name] = value.strip()
    return headers


def _parse_filter(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None


@dataclass
class Parsed:
    """A form read into the API's body fields, or the fields that could not be read."""

    body: dict[str, Any]
    errors: dict[str, str]


def parse(texts: dict[str, str], *, stored_headers: str = "") -> Parsed:
    """The API body of the fields in ``texts``; ``stored_headers``: the headers as the form
    showed them (``headers_text`` of the redacted headers)."""
    body: dict[str, Any] = {}
    errors: dict[str, str] = {}
    if not texts["url"]:
        errors["url"] = "required"
    else:
        body["url"] = texts["url"]
    body["event_types"] = items(texts["event_types"])
    body["description"] = texts["description"] or None
    if "retry_schedule" in texts:
        body["retry_schedule"] = items(texts["retry_schedule"]) or None
    if "rate_limit" in texts:
        body["rate_limit"] = texts["rate_limit"] or None
    if "ordering" in texts:
        body["ordering"] = texts["ordering"] or Ordering.UNORDERED.value
    if "headers" in texts and _normalized(texts["headers"]) != _normalized(stored_headers):
        try:
            body["headers"] = _parse_headers(texts["headers"]) or None
        except ValueError as exc:
            errors["headers"] = str(exc)
    if "filter" in texts:
        try:
            body["filter"] = _parse_filter(texts["filter"]) if texts["filter"] else None
        except ValueError as exc:
            errors["filter"] = str(exc)
    return Parsed(body, errors)


def _validation_errors(exc: ValidationError) -> dict[str, str]:
    """Form field → message: an error inside a list or an object is the field's own."""
    found: dict[str, str] = {}
    for error in exc.errors():
        loc = error["loc"]
        field = str(loc[0]) if loc else "form"
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "string_pattern_mismatch":
            message = _PATTERN_HINTS.get(field, "not in the expected format")
            message = f"{error['input']!r}: {message}"
        elif field == "retry_schedule" and len(loc) > 1 and isinstance(loc[1], int):
            message = f"delay {loc[1] + 1}: {message}"
        found.setdefault(field, message)
    return found


def app_errors(exc: AppError) -> dict[str, str]:
    """The fields a service's error names (the URL the SSRF guard refused), else the form."""
    if exc.fields:
        return {f.get("field", "form"): f.get("message", exc.message) for f in exc.fields}
    return {"form": exc.message}


def validated(model: type[Body], parsed: Parsed) -> tuple[Body | None, dict[str, str]]:
    """The body validated by the API's schema (None if anything is wrong), and the errors of
    every field: those the form could not read, then those the schema refused."""
    errors = dict(parsed.errors)
    try:
        data = model.model_validate(parsed.body)
    except ValidationError as exc:
        for field, message in _validation_errors(exc).items():
            errors.setdefault(field, message)
        return None, errors
    return (None if errors else data), errors


async def checked(
    model: type[Body], texts: dict[str, str], settings: Settings, *, stored_headers: str = ""
) -> tuple[endpoints.Checked[Body] | None, dict[str, str]]:
    """The form's body, validated and its URL checked (resolved: call it outside any
    transaction), or None and the errors of each field."""
    data, errors = validated(model, parse(texts, stored_headers=stored_headers))
    if data is None:
        return None, errors
    try:
        return await endpoints.check(data, settings), {}
    except AppError as exc:
        if exc.status_code != 422:
            raise
        return None, app_errors(exc)
