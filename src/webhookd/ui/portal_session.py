"""Sessions of the tenant portal (``/portal``): a signed cookie holding the grant a one-time
link was exchanged for (tenant, endpoint scope, expiry, the fingerprint of the tenant's API
key) and the session's CSRF token. Every request checks the grant again: a rotated API key
or an expired session ends it.

The portal may be framed by the tenant's own app (another site), where browsers send only
cookies marked ``SameSite=None; Secure`` (and ``Partitioned``, kept per embedding site):
over HTTPS the cookie is set that way; over plain HTTP (development) ``SameSite=Lax``.
Forms carry the CSRF token either way.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.datastructures import FormData

from webhookd.api.deps import SessionDep
from webhookd.portal.service import REFUSED, Grant, check
from webhookd.ui.session import CSRF_FIELD, CSRF_HEADER, CsrfRefused, signing_key

COOKIE = "webhookd_portal"


class PortalRefused(Exception):
    """No valid portal session: the page says the link must be opened again."""


class PortalSessions:
    def __init__(self, *, pepper: str) -> None:
        self._signer = URLSafeTimedSerializer(
            signing_key(pepper, "", "portal"), salt="webhookd.portal"
        )

    def issue(self, grant: Grant) -> str:
        return self._signer.dumps(
            {
                "t": grant.tenant_id,
                "e": list(grant.endpoint_ids) if grant.endpoint_ids is not None else None,
                "k": grant.key_fingerprint,
                "x": grant.expires_at.timestamp(),
                "c": secrets.token_urlsafe(24),
            }
        )

    def read(self, value: str | None) -> tuple[Grant, str] | None:
        if not value:
            return None
        try:
            data: Any = self._signer.loads(value, max_age=86_400)
            grant = Grant(
                tenant_id=int(data["t"]),
                endpoint_ids=tuple(data["e"]) if data["e"] is not None else None,
                key_fingerprint=str(data["k"]),
                expires_at=dt.datetime.fromtimestamp(float(data["x"]), dt.UTC),
            )
            return grant, str(data["c"])
        except (BadSignature, KeyError, TypeError, ValueError):
            return None


def portal_sessions(app: FastAPI) -> PortalSessions:
    sessions = app.state.portal_sessions
    assert isinstance(sessions, PortalSessions)
    return sessions


@dataclass(frozen=True, slots=True)
class Portal:
    grant: Grant
    csrf: str

    @property
    def tenant_id(self) -> int:
        return self.grant.tenant_id

    def sees(self, endpoint_ref: str) -> bool:
        scope = self.grant.endpoint_ids
        return scope is None or endpoint_ref in scope


async def require_portal(request: Request, session: SessionDep) -> Portal:
    found = portal_sessions(request.app).read(request.cookies.get(COOKIE))
    if found is None:
        raise PortalRefused(REFUSED)
    grant, csrf = found
    try:
        await check(session, grant)
    except Exception as exc:
        raise PortalRefused(REFUSED) from exc
    return Portal(grant, csrf)


PortalDep = Annotated[Portal, Depends(require_portal)]


async def checked_portal_form(request: Request, portal: PortalDep) -> FormData:
    form = await request.form()
    token = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    if not isinstance(token, str) or not hmac.compare_digest(token, portal.csrf):
        raise CsrfRefused("the form's CSRF token is missing or stale: reload the page")
    return form


PortalFormDep = Annotated[FormData, Depends(checked_portal_form)]


def set_portal_cookie(response: Any, request: Request, value: str, grant: Grant) -> None:
    max_age = max(1, int((grant.expires_at - dt.datetime.now(dt.UTC)).total_seconds()))
    secure = request.url.scheme == "https"
    response.set_cookie(
        COOKIE,
        value,
        max_age=max_age,
        httponly=True,
        samesite="none" if secure else "lax",
        secure=secure,
        partitioned=secure,
        path="/portal",
    )
