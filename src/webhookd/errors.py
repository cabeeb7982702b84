"""The API's error types: each carries its status, a stable code and a message.

They are raised by services and routes alike; ``webhookd.api.errors`` renders them in the
one JSON error shape.
"""

from __future__ import annotations


class AppError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        fields: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        if code is not None:
            self.code = code
        self.headers = headers
        self.fields = fields


class NotFound(AppError):
    status_code = 404
    code = "not_found"


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"


class Conflict(AppError):
    status_code = 409
    code = "conflict"


class Unprocessable(AppError):
    status_code = 422
    code = "validation_error"


def field_error(field: str, message: str, location: str = "body") -> Unprocessable:
    """A 422 that names one field."""
    return Unprocessable(
        f"{field}: {message}", fields=[{"field": field, "location": location, "message": message}]
    )
