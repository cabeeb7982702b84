"""Rendering the pages: one Jinja2 environment (autoescaped) loaded from the package, and
the headers every page carries (a strict Content-Security-Policy: scripts and styles only
from this server, never framed)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

STATIC = "/ui/static"
PAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _when(value: dt.datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def event_path(tenant_ref: str, event_id: str) -> str:
    """The console page of an event: its event_id quoted (it may hold characters such as "
    or &)."""
    return f"/ui/tenants/{tenant_ref}/events/{quote(event_id, safe='')}"


def delivery_path(tenant_ref: str, event_id: str, delivery_id: str) -> str:
    """Where the console shows a delivery: on its event's page, at the delivery."""
    return f"{event_path(tenant_ref, event_id)}#{delivery_id}"


ENV = Environment(
    loader=PackageLoader("webhookd.ui", "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.globals["static"] = STATIC
ENV.globals["event_path"] = event_path
ENV.globals["delivery_path"] = delivery_path
ENV.filters["when"] = _when


def content_policy(frame_ancestors: list[str] | None, images: str | None) -> str:
    """The page's Content-Security-Policy: framed by none (the console) or by these origins
    (the portal, the tenant's allow-list); images from this server and ``images``."""
    ancestors = " ".join(["'self'", *frame_ancestors]) if frame_ancestors else "'none'"
    img = "'self' data:" + (f" {images}" if images else "")
    return (
        f"default-src 'self'; script-src 'self'; style-src 'self'; img-src {img}; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; "
        f"frame-ancestors {ancestors}"
    )


PAGE_HEADERS["Content-Security-Policy"] = content_policy(None, None)


def render(
    request: Request,
    template: str,
    *,
    csrf: str | None = None,
    status_code: int = 200,
    frame_ancestors: list[str] | None = None,
    logo: str | None = None,
    **context: Any,
) -> HTMLResponse:
    """The page ``template`` rendered with ``context``; ``csrf`` goes into every form;
    ``frame_ancestors``: the origins that may frame it (none by default)."""
    html = ENV.get_template(template).render(
        request=request, csrf=csrf, path=request.url.path, logo=logo, **context
    )
    headers = dict(PAGE_HEADERS)
    if frame_ancestors is not None or logo is not None:
        images = None
        if logo:
            parts = urlsplit(logo)
            images = f"{parts.scheme}://{parts.netloc}"
        headers["Content-Security-Policy"] = content_policy(frame_ancestors, images)
    return HTMLResponse(html, status_code=status_code, headers=headers)
