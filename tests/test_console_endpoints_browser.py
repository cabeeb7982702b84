"""The console's endpoint pages in a real browser (Chromium, headless, through Playwright):
add an endpoint pointing at the receiver, send it a test event and see it delivered, pause
and enable it, change its policy, at desktop and phone widths."""

from __future__ import annotations

import time
import uuid

import httpx
from playwright.sync_api import Page, expect

from tests.fixtures.browser import screenshot, sign_in
from tests.fixtures.receiver import Receiver
from tests.fixtures.server import ADMIN_KEY, LiveServer


def new_tenant(server: LiveServer) -> str:
    with httpx.Client(base_url=server.url, headers={"X-Admin-Key": ADMIN_KEY}, timeout=10) as admin:
        response = admin.post(
            "/api/v1/tenants", json={"name": "Endpoint Browser", "email": "ops@browser.example"}
        )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def reload_until(page: Page, text: str, timeout: float = 10.0) -> None:
    """Reload the page until its newest delivery shows ``text`` (bounded)."""
    newest = page.locator("table[data-deliveries] tbody tr").first
    deadline = time.monotonic() + timeout
    while text not in newest.inner_text():
        assert time.monotonic() < deadline, f"no delivery {text} within {timeout}s"
        page.wait_for_timeout(200)
        page.reload()


def assert_fits(page: Page) -> None:
    """Nothing but the tables (which scroll in their .table-wrap) is wider than the page."""
    page.wait_for_load_state("load")  # the stylesheets too
    wide = page.evaluate(
        """() => [...document.querySelectorAll("body *")]
            .filter(e => !e.closest(".table-wrap")
                && e.getBoundingClientRect().right > window.innerWidth + 0.5)
            .map(e => e.tagName + " " + (e.textContent || "").trim().slice(0, 40))"""
    )
    assert wide == [], wide
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_operator_tests_pauses_and_enables_an_endpoint(
    page: Page, server: LiveServer, receiver: Receiver
) -> None:
    tenant_id = new_tenant(server)
    path = f"/browser-{uuid.uuid4().hex[:12]}"
    url = receiver.url(path)
    sign_in(page, server, f"/ui/tenants/{tenant_id}")
    page.get_by_role("button", name="Endpoints", exact=True).click()  # a link styled as a button
    expect(page.get_by_role("heading", name="Endpoints of Endpoint Browser")).to_be_visible()

    page.get_by_label("URL", exact=True).fill("ftp://example.com/hook")
    page.get_by_role("button", name="Create endpoint").click()
    expect(page.get_by_label("URL", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("alert")).to_contain_text("scheme 'ftp' is not allowed")

    page.get_by_label("URL", exact=True).fill(url)
    page.get_by_label("Event types").fill("user.created, invoice.*")
    page.get_by_label("Description").fill("from the browser test")
    page.get_by_role("button", name="Create endpoint").click()
    expect(page.get_by_role("status")).to_have_text("Endpoint created.")
    expect(page.locator('[data-health="state"]')).to_have_text("active")

    page.get_by_role("button", name="Send test event").click()
    expect(page.get_by_role("status")).to_contain_text("Test event sent")
    receiver.wait_for(1, path)
    reload_until(page, "succeeded")
    expect(page.locator('[data-health="success_rate"]')).to_contain_text("100%")
    expect(page.locator("table[data-deliveries] tbody tr").first).to_contain_text("webhookd.test")
    screenshot(page, "console-endpoint")

    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_role("status")).to_contain_text("Paused")
    expect(page.locator('[data-health="state"]')).to_have_text("paused")
    expect(page.get_by_role("button", name="Send test event")).to_have_count(0)
    page.get_by_role("button", name="Enable").click()
    expect(page.get_by_role("status")).to_contain_text("Enabled")
    expect(page.locator('[data-health="state"]')).to_have_text("active")

    page.get_by_label("Retry schedule (seconds)").fill("5, 60, 3600")
    page.get_by_label("Custom headers").fill("Authorization: Bearer browser-secret\nX-Team: qa")
    page.get_by_role("button", name="Save policy").click()
    expect(page.get_by_role("status")).to_have_text("Saved.")
    expect(page.get_by_label("Retry schedule (seconds)")).to_have_value("5, 60, 3600")
    expect(page.get_by_label("Custom headers")).to_have_value(
        "Authorization: [redacted]\nX-Team: qa"
    )
    page.get_by_label("Payload filter (JSON)").fill("{nope")
    page.get_by_role("button", name="Save policy").click()
    expect(page.get_by_label("Payload filter (JSON)")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("alert")).to_contain_text("not valid JSON")

    # The secret kept its stored value through the redacted form.
    page.get_by_label("Payload filter (JSON)").fill("")
    page.get_by_role("button", name="Save policy").click()
    expect(page.get_by_role("status")).to_have_text("Saved.")
    page.get_by_role("button", name="Send test event").click()
    requests = receiver.wait_for(2, path)
    assert requests[-1].header("Authorization") == "Bearer browser-secret"

    page.set_viewport_size({"width": 375, "height": 800})  # a phone: still usable
    page.get_by_role("navigation", name="breadcrumb").get_by_role("link", name="Endpoints").click()
    expect(page.get_by_role("link", name=url)).to_be_visible()
    assert_fits(page)
    page.get_by_role("link", name=url).click()
    expect(page.get_by_role("heading", name="Endpoint", exact=True)).to_be_visible()
    assert_fits(page)
    page.get_by_role("button", name="Delete…").click()  # a link styled as a button
    page.get_by_role("button", name="Delete endpoint").click()  # the box is required
    expect(page.get_by_role("heading", name="Delete endpoint?")).to_be_visible()
    page.get_by_label("Yes, delete this endpoint and its history").check()
    page.get_by_role("button", name="Delete endpoint").click()
    expect(page.get_by_role("status")).to_contain_text("Endpoint deleted")
    expect(page.get_by_text("No endpoint yet.")).to_be_visible()
