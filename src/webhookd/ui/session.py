"""Sessions of the web pages: the operator console (``/ui``).

A session is a cookie signed with itsdangerous, issued once the admin key was checked: it
holds the session's CSRF token and its age. It is ``HttpOnly`` (no script reads it),
``SameSite=Strict`` (no other site's page sends it), ``Secure`` when the page came over
HTTPS, and ends after ``SESSION_SECONDS``. The signing key is derived from the server's
pepper and the admin key, so rotating the admin key ends every console session.

Every form that changes something carries the CSRF token (a hidden ``csrf`` field, or the
``X-CSRF-Token`` header that htmx requests send) and must match the session's; a request
whose ``Origin`` names another site is refused as well.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.datastructures import FormData

from webhookd.errors import AppError

COOKIE = "webhookd_console"
SESSION_SECONDS = 8 * 3600
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"


class LoginRequired(AppError):
    """No valid console session: a page sends the browser to the login form."""

    status_code = 401
    code = "login_required"


class CsrfRefused(AppError):
    status_code = 403
    code = "csrf_refused"


def signing_key(pepper: str, admin_key: str, purpose: str) -> str:
    material = purpose.encode() + b":" + hashlib.sha256(admin_key.encode()).digest()
    return hmac.new(pepper.encode(), material, hashlib.sha256).hexdigest()


class ConsoleSessions:
    """Issue and read console session cookies."""

    def __init__(self, *, pepper: str, admin_key: str) -> None:
        self._signer = URLSafeTimedSerializer(
            signing_key(pepper, admin_key, "console"), salt="webhookd.console"
        )

    def issue(self) -> tuple[str, str]:
        """A new session: (cookie value, its CSRF token)."""
        csrf = secrets.token_urlsafe(24)
        return self._signer.dumps({"csrf": csrf}), csrf

    def read(self, value: str | None) -> str | None:
        """The CSRF token of a valid, unexpired session cookie; None otherwise."""
        if not value:
            return None
        try:
            data: Any = self._signer.loads(value, max_age=SESSION_SECONDS)
        except BadSignature:
            return None
        csrf = data.get("csrf") if isinstance(data, dict) else None
        return csrf if isinstance(csrf, str) else None


def console_sessions(app: FastAPI) -> ConsoleSessions:
    sessions = app.state.console_sessions
    assert isinstance(sessions, ConsoleSessions)
    return sessions


@dataclass(frozen=True, slots=True)
class Console:
    """A request of a signed-in operator."""

    csrf: str


async def require_console(request: Request) -> Console:
    csrf = console_sessions(request.app).read(request.cookies.get(COOKIE))
    if csrf is None:
        raise LoginRequired("sign in with the admin key")
    return Console(csrf=csrf)


ConsoleDep = Annotated[Console, Depends(require_console)]


def same_origin(request: Request) -> bool:
    """Whether the request's ``Origin`` (or ``Referer``) is this server, or absent."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return origin is None
    parts = urlsplit(origin)
    return parts.netloc == request.headers.get("host", "") and parts.scheme in ("http", "https")


async def checked_form(request: Request, console: ConsoleDep) -> FormData:
    """The posted form of a signed-in operator, once its CSRF token and origin check out."""
    form = await request.form()
    token = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    if not isinstance(token, str) or not hmac.compare_digest(token, console.csrf):
        raise CsrfRefused("the form's CSRF token is missing or stale: reload the page")
    if not same_origin(request):
        raise CsrfRefused("a form posted from another site")
    return form


FormDep = Annotated[FormData, Depends(checked_form)]


def set_session_cookie(response: Any, request: Request, value: str) -> None:
    response.set_cookie(
        COOKIE,
        value,
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
