"""The operator console in a real browser (Chromium, headless, through Playwright): sign in,
create a tenant, see its keys once, change its settings."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.fixtures.browser import screenshot, sign_in
from tests.fixtures.server import LiveServer


def test_operator_signs_in_and_creates_a_tenant(page: Page, server: LiveServer) -> None:
    page.goto(server.url + "/ui")
    expect(page).to_have_url(re.compile(r"/ui/login"))
    page.get_by_label("Admin key").fill("whadm_wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not the admin key")

    sign_in(page, server)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    screenshot(page, "console-overview")

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
