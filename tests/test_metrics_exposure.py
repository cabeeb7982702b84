"""Security round 2, item 5: /metrics stays bounded whatever publishers send (event types
and tenants over their label budgets count as `other`), per-tenant series can be turned
off, and /metrics can require a token."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import TenantCtx, create_tenant
from tests.fixtures.server import ADMIN_KEY, LiveServer, running_server

TOKEN = "metrics-token-for-tests-0123456789"
MAX_TYPES = 5


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with running_server(
        tmp_path_factory,
        metrics_token=TOKEN,
        metrics_max_event_types=MAX_TYPES,
        metrics_tenant_label="off",
    ) as srv:
        yield srv


@pytest.fixture(scope="module")
def tenant(server: LiveServer) -> Iterator[TenantCtx]:
    with server.client(**{"X-Admin-Key": ADMIN_KEY}) as admin:
        ctx = create_tenant(server, admin)
    yield ctx
    ctx.client.close()


def _metrics(server: LiveServer) -> str:
    with server.client(Authorization=f"Bearer {TOKEN}") as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    return response.text


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-token-0123456789", f"Basic {TOKEN}", TOKEN]
)
def test_metrics_need_the_token(server, authorization) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    with server.client(**headers) as client:
        response = client.get("/metrics")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert "webhook_" not in response.text


def test_tenant_ids_are_not_labels_when_turned_off(server, tenant) -> None:
    # A catalogued type keeps its name as a label (others count as `other`).
    created = tenant.client.post(
        f"/api/v1/tenants/{tenant.id}/event-types", json={"name": "exposure.check"}
    )
    assert created.status_code == 201, created.text
    assert tenant.publish("exposure.check", event_id="evt_exposure").status_code == 202
    series = re.findall(
        r'webhook_events_published_total\{event_type="exposure\.check",([^}]*)\}', _metrics(server)
    )
    assert series == ['tenant="all"']


def test_distinct_event_types_do_not_grow_metrics_without_bound(server, tenant) -> None:
    before = len(_metrics(server))
    for n in range(300):
        assert tenant.publish(f"spam.type{n}", event_id=f"evt_spam_{n}").status_code == 202
    text = _metrics(server)
    spam = set(re.findall(r'event_type="(spam\.type\d+)"', text))
    assert len(spam) <= MAX_TYPES
    assert re.search(r'webhook_events_published_total\{event_type="other",tenant="all"\}', text)
    assert len(text) - before < 20_000  # 300 types would have been ~300 series more


def test_the_admin_key_is_not_a_metrics_token(server) -> None:
    with server.client(Authorization=f"Bearer {ADMIN_KEY}") as client:
        assert client.get("/metrics").status_code == 401
    with httpx.Client(base_url=server.url, headers={"X-Admin-Key": ADMIN_KEY}) as client:
        assert client.get("/metrics").status_code == 401
