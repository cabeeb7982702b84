"""Rendering the pages: one Jinja2 environment (autoescaped) loaded from the package, and
the headers every page carries (a strict Content-Security-Policy: scripts and styles only
from this server, never framed)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

STATIC = "/ui/static"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; "
    "frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _when(value: dt.datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


ENV = Environment(
    loader=PackageLoader("webhookd.ui", "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.globals["static"] = STATIC
ENV.filters["when"] = _when


def render(
    request: Request,
    template: str,
    *,
    csrf: str | None = None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """The page ``template`` rendered with ``context``; ``csrf`` goes into every form."""
    html = ENV.get_template(template).render(
        request=request, csrf=csrf, path=request.url.path, **context
    )
    return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)
