"""The operator console in a real browser (Chromium, headless, through Playwright): sign in,
create a tenant, see its keys once, change its settings."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.conftest import create_tenant
from tests.fixtures.browser import screenshot, sign_in
from tests.fixtures.delivery import wait_final, wait_until
from tests.fixtures.receiver import Receiver
from tests.fixtures.server import LiveServer, running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[LiveServer]:
    """Counters written to the chart history every 0.2 s (instead of every minute)."""
    with running_server(
        tmp_path_factory, "console", backend=backend, metrics_sample_interval=0.2
    ) as srv:
        yield srv


def test_operator_signs_in_and_creates_a_tenant(page: Page, server: LiveServer) -> None:
    page.goto(server.url + "/ui")
    expect(page).to_have_url(re.compile(r"/ui/login"))
    page.get_by_label("Admin key").fill("whadm_wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not the admin key")

    sign_in(page, server)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()

    page.get_by_role("navigation", name="Console").get_by_role("link", name="Tenants").click()
    page.get_by_label("Name").fill("Acme Browser")
    page.get_by_label("Email").fill("ops@acme.example")
    page.get_by_role("button", name="Create tenant").click()
    expect(page.get_by_role("heading", name="Tenant Acme Browser created")).to_be_visible()
    api_key = page.locator('[data-secret="API key"]').inner_text()
    assert api_key.startswith("whk_")

    page.get_by_role("link", name="Go to tenant Acme Browser").click()
    page.get_by_label("Retention (days)").fill("14")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Saved.")
    expect(page.get_by_label("Retention (days)")).to_have_value("14")
    screenshot(page, "console-tenant")

    page.set_viewport_size({"width": 375, "height": 800})  # a phone: still usable
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Tenants").click()
    expect(page.get_by_role("link", name="Acme Browser")).to_be_visible()


def test_overview_draws_charts_from_the_counters(
    page: Page, server: LiveServer, admin: httpx.Client, receiver: Receiver
) -> None:
    tenant = create_tenant(server, admin)
    receiver.plan("/console/charts")
    tenant.add_endpoint(receiver.url("/console/charts"))
    for n in range(5):
        assert tenant.publish("chart.event", event_id=f"evt_chart_{n}").status_code == 202
    for n in range(5):
        wait_final(tenant.client, f"evt_chart_{n}")

    def counted() -> bool:
        series = page.request.get(server.url + "/ui/overview/series?window=hour").json()
        return sum(series["events_per_second"]) > 0 and sum(series["deliveries_per_second"]) > 0

    sign_in(page, server)
    wait_until(counted, what="the samples in the chart series")
    page.reload()
    expect(page.locator("[data-series]")).to_have_attribute("data-drawn", "true")
    expect(page.locator(".chart canvas")).to_have_count(4)
    expect(page.locator('[data-summary="success_rate"]')).to_have_text("100.0 %")
    screenshot(page, "console-overview")
    page.get_by_role("link", name="Last day (per half hour)").click()
    expect(page.locator("[data-series]")).to_have_attribute("data-drawn", "true")
    tenant.client.close()
