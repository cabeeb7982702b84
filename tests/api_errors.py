"""Assertions on the API's JSON error shape: ``{"error": {"code", "message", "fields"?}}``."""

from __future__ import annotations

import httpx


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    """The response is the API's JSON error with this status and code; returns ``error``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert {"code", "message"} <= set(error) <= {"code", "message", "fields"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    return error


def field_names(error: dict) -> list[str]:
    """The ``field`` of every entry of a validation error's ``fields``."""
    return [f["field"] for f in error.get("fields", [])]
