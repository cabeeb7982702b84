"""Errors on the web pages are pages: a missing session sends a browser to the sign-in form,
anything else is an HTML page with the API's status and message (the API keeps its JSON).

A request htmx made (``HX-Request``: polling the live table or a job's progress) would swap
the answer into a part of the page; a missing or ended session answers it with
``HX-Redirect`` instead, so the browser loads the whole sign-in page (console) or the page
saying the portal session has ended (portal)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import URL

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


PORTAL_ENDED = "/portal/ended"


def from_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def _path_and_query(url: URL) -> str:
    return url.path + (f"?{url.query}" if url.query else "")


def _page_shown(request: Request) -> str:
    """The console page the browser shows: the htmx request's own URL is a fragment's."""
    shown = urlsplit(request.headers.get("hx-current-url", ""))
    if shown.path.startswith("/ui"):
        return shown.path + (f"?{shown.query}" if shown.query else "")
    return "/ui"


def htmx_redirect(location: str) -> Response:
    """The answer to an htmx request whose session is missing: htmx loads ``location`` as a
    whole page instead of swapping the answer in."""
    return Response(status_code=401, headers={"HX-Redirect": location, "Cache-Control": "no-store"})


def page_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, PortalRefused) or (isinstance(exc, Unauthorized) and _portal(request)):
        if from_htmx(request):
            return htmx_redirect(PORTAL_ENDED)
        return render(request, "portal_refused.html", status_code=401, message=str(exc))
    if isinstance(exc, LoginRequired):
        if from_htmx(request):
            return htmx_redirect(f"/ui/login?next={quote(_page_shown(request))}")
        if request.method == "GET":
            target = _path_and_query(request.url)
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
