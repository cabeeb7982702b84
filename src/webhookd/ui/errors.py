"""Errors on the web pages are pages: a missing session sends a browser to the sign-in form,
anything else is an HTML page with the API's status and message (the API keeps its JSON)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response

from webhookd.errors import AppError, Unauthorized
from webhookd.ui.portal_session import PortalRefused
from webhookd.ui.session import LoginRequired
from webhookd.ui.templating import render

Handler = Callable[[Request, Exception], Awaitable[Response]]
TITLES = {
    401: "Sign in first",
    403: "Refused",
    404: "Not found",
    422: "Not valid",
    429: "Slow down",
}


def is_page(request: Request) -> bool:
    path = request.url.path
    if path.startswith("/ui/static/"):
        return False
    return path in ("/ui", "/portal") or path.startswith(("/ui/", "/portal/"))


def _portal(request: Request) -> bool:
    return request.url.path == "/portal" or request.url.path.startswith("/portal/")


def page_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, PortalRefused) or (isinstance(exc, Unauthorized) and _portal(request)):
        return render(request, "portal_refused.html", status_code=401, message=str(exc))
    if isinstance(exc, LoginRequired):
        if request.method == "GET":
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/ui/login?next={quote(target)}", status_code=303)
        return render(request, "login.html", status_code=401, error=exc.message)
    if isinstance(exc, AppError):
        status, message = exc.status_code, exc.message
    else:
        status, message = 422, "; ".join(str(e.get("msg")) for e in exc.errors())  # type: ignore[attr-defined]
    return render(
        request,
        "portal_error.html" if _portal(request) else "error.html",
        status_code=status,
        status=status,
        title=TITLES.get(status, "Error"),
        message=message,
        back=request.headers.get("referer"),
    )


def install_page_errors(app: FastAPI) -> None:
    """Route AppError and validation errors of page requests to :func:`page_error`."""
    app.add_exception_handler(PortalRefused, page_error)
    for kind in (AppError, RequestValidationError):
        api_handler: Handler = app.exception_handlers[kind]  # type: ignore[assignment]

        def handler(api: Handler) -> Handler:
            async def handle(request: Request, exc: Exception) -> Response:
                if is_page(request):
                    return page_error(request, exc)
                return await api(request, exc)

            return handle

        app.add_exception_handler(kind, handler(api_handler))
