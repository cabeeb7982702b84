"""The tenant portal in a real browser (Chromium through Playwright): a tenant's customer
opens the one-time link, adds an endpoint, sends a test event and sees it delivered, then
shows the endpoint's signing secret; the same link opened again, or an expired one, is
refused."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.fixtures.browser import screenshot
from tests.fixtures.delivery import wait_until
from tests.fixtures.receiver import Receiver
from tests.fixtures.server import LiveServer


def test_customer_adds_an_endpoint_and_sends_a_test_event(
    page: Page, server: LiveServer, tenant, receiver: Receiver
) -> None:
    receiver.plan("/portal-browser/hook")
    created = tenant.client.post("/api/v1/portal-sessions", json={"ttl": 600}).json()
    page.goto(created["url"])
    expect(page.get_by_role("heading", name="Endpoints")).to_be_visible()

    page.get_by_label("URL").fill(receiver.url("/portal-browser/hook"))
    page.get_by_label("Event types").fill("order.*")
    page.get_by_role("button", name="Add endpoint").click()
    expect(page.get_by_role("heading", name="Endpoint", exact=True)).to_be_visible()
    page.get_by_role("button", name="Send a test event").click()
    expect(page.get_by_role("status")).to_contain_text("Test event sent")
    receiver.wait_for(1, "/portal-browser/hook")
    screenshot(page, "portal-endpoint")

    page.get_by_role("status").get_by_role("link").click()

    def delivered() -> bool:
        page.reload()
        return page.locator("[data-status]").inner_text() == "succeeded"

    wait_until(delivered, what="the test delivery shown as succeeded")
    expect(page.get_by_role("cell", name=re.compile("200"))).to_be_visible()

    # Back on the endpoint: the secret its deliveries are signed with (the tenant's here).
    page.get_by_role("link", name="Endpoint", exact=True).click()
    page.get_by_role("button", name="Show this endpoint's signing secret").click()
    expect(page.locator("[data-secret]")).to_have_text(tenant.secret_key)

    # The link was used: opening it again is refused.
    page.context.clear_cookies()
    page.goto(created["url"])
    expect(page.get_by_role("heading", name="This link cannot be used")).to_be_visible()
