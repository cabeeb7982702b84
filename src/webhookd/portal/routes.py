"""``POST /api/v1/portal-sessions``: a one-time link into the tenant portal."""

from __future__ import annotations

from fastapi import APIRouter, Request

from webhookd.api.deps import TenantDep, WriteSessionDep
from webhookd.api.errors import error_responses
from webhookd.api.route import OrjsonRoute
from webhookd.portal import service
from webhookd.portal.schemas import PortalSessionCreate, PortalSessionRead

router = APIRouter(prefix="/api/v1/portal-sessions", tags=["portal"], route_class=OrjsonRoute)


@router.post("", status_code=201, response_model=PortalSessionRead, responses=error_responses(404))
async def create_portal_session(
    request: Request,
    tenant: TenantDep,
    session: WriteSessionDep,
    data: PortalSessionCreate | None = None,
) -> PortalSessionRead:
    """A one-time link that opens the tenant portal for this tenant (its own key): give it
    to your customer, or load it in an iframe of your app. The link works once, until
    `expires_at` (`ttl`, 1 h by default, 24 h at most), and stops working when the tenant's
    API key is rotated; the session it opens ends at the same time."""
    data = data or PortalSessionCreate()
    token, row = await service.create_link(
        session, tenant_id=tenant.id, endpoint_ids=data.endpoint_ids, ttl=data.ttl
    )
    return PortalSessionRead(
        url=service.link_url(str(request.base_url), token),
        token=token,
        expires_at=row.expires_at,
        endpoint_ids=row.endpoint_ids,
    )
