"""The console's dead-letter queue, event pages and live view in a real browser (Chromium,
headless, through Playwright): deliveries die, one is retried, then all that match in a
background job whose progress updates in place; an event's attempts; a new delivery shows
up on the live page without a reload."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.conftest import TenantCtx, create_tenant
from tests.fixtures.browser import screenshot, sign_in
from tests.fixtures.delivery import wait_deliveries, wait_final
from tests.fixtures.receiver import Receiver
from tests.fixtures.server import ADMIN_KEY, LiveServer, running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[LiveServer]:
    """Deliveries die after two attempts; a job handles one entry per batch, 0.3 s apart,
    so that its progress can be watched."""
    with running_server(
        tmp_path_factory,
        "console-events-browser",
        backend=backend,
        max_attempts=2,
        job_batch_size=1,
        job_batch_pause=0.3,
    ) as srv:
        yield srv


@pytest.fixture
def tenant(server: LiveServer, admin: httpx.Client) -> Iterator[TenantCtx]:
    ctx = create_tenant(server, admin)
    yield ctx
    ctx.client.close()


def die(tenant: TenantCtx, event_id: str) -> None:
    """Publish through the API with the tenant's key; wait until its delivery is dead."""
    response = tenant.publish("order.failed", event_id=event_id, total=12)
    assert response.status_code == 202, response.text
    wait_deliveries(tenant.client, event_id, lambda ds: bool(ds) and ds[0]["status"] == "dead")


def mark_page(page: Page) -> None:
    """A mark that a reload would lose: what changes after it changed in place."""
    page.evaluate("document.body.dataset.unreloaded = 'yes'")


def expect_not_reloaded(page: Page) -> None:
    expect(page.locator("body")).to_have_attribute("data-unreloaded", "yes")


def fits(page: Page) -> bool:
    """Whether the page's content is no wider than the window (tables scroll in their own
    box)."""
    return bool(
        page.evaluate(
            "(() => { const main = document.querySelector('main');"
            " return main.scrollWidth <= main.clientWidth + 1"
            " && main.getBoundingClientRect().right <= window.innerWidth + 1; })()"
        )
    )


def test_dead_letters_retry_one_then_all_and_open_the_event(
    page: Page, server: LiveServer, tenant: TenantCtx, receiver: Receiver
) -> None:
    receiver.plan("/browser/dlq", default=500, body=b"down for maintenance")
    tenant.add_endpoint(receiver.url("/browser/dlq"), headers={"X-Api-Token": "hush"})
    die(tenant, "order-1")

    sign_in(page, server, f"/ui/tenants/{tenant.id}/dlq")
    expect(page.get_by_role("heading", name="Dead letters")).to_be_visible()
    row = page.locator("tr", has=page.get_by_role("link", name="order-1"))
    expect(row).to_contain_text("receiver answered HTTP 500")
    screenshot(page, "console-dlq")

    receiver.plan("/browser/dlq", default=200)
    row.get_by_role("button", name="Retry order-1").click()
    expect(page.get_by_role("status")).to_contain_text("Sent again")
    expect(page.get_by_role("link", name="order-1")).to_have_count(0)
    assert wait_final(tenant.client, "order-1")["status"] == "succeeded"

    receiver.plan("/browser/dlq", default=500, body=b"down again")
    for n in (2, 3, 4):
        die(tenant, f"order-{n}")
    page.get_by_label("Event type").fill("order.failed")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tr[data-entry]")).to_have_count(3)
    receiver.plan("/browser/dlq", default=200)
    page.get_by_role("button", name="Retry all matching").click()
    expect(page).to_have_url(re.compile(r"/jobs/job_\w+$"))
    expect(page.get_by_role("heading", name="Retry of dead letters")).to_be_visible()
    expect(page.get_by_role("link", name="Refresh")).to_be_visible()
    mark_page(page)
    expect(page.locator("[data-job-status]")).to_have_text("succeeded", timeout=10_000)
    expect(page.locator('[data-job="done"]')).to_have_text("3")
    expect(page.locator('[data-job="total"]')).to_have_text("3")
    expect(page.locator('[data-job="failed"]')).to_have_text("0")
    expect_not_reloaded(page)  # htmx brought the progress in
    for n in (2, 3, 4):
        assert wait_final(tenant.client, f"order-{n}")["status"] == "succeeded"

    page.goto(f"{server.url}/ui/tenants/{tenant.id}/events")
    page.get_by_label("Event id").fill("order-2")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="order-2").click()
    expect(page.get_by_role("heading", name="Event order-2")).to_be_visible()
    attempts = page.locator("table.attempts tbody tr")
    expect(attempts).to_have_count(3)  # two that failed, then the retry that succeeded
    expect(attempts.nth(0)).to_contain_text("down again")
    expect(page.locator("[data-status]").first).to_have_text("succeeded")
    page.get_by_text("Request as sent").click()
    headers = page.locator("table.headers")
    expect(headers).to_be_visible()
    for name in ("webhook-signature", "X-Webhook-Signature", "X-Api-Token"):
        expect(headers.get_by_role("row", name=f"{name} [redacted]", exact=True)).to_be_visible()
    expect(headers).not_to_contain_text("hush")
    screenshot(page, "console-event")

    page.set_viewport_size({"width": 375, "height": 800})  # a phone: still usable
    assert fits(page)
    page.get_by_role("link", name="Event log").click()
    expect(page.get_by_role("link", name="order-4")).to_be_visible()
    assert fits(page)


def test_live_shows_a_new_delivery_without_a_reload(
    page: Page, server: LiveServer, tenant: TenantCtx, receiver: Receiver
) -> None:
    receiver.plan("/browser/live")
    tenant.add_endpoint(receiver.url("/browser/live"))
    sign_in(page, server)
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Live").click()
    expect(page.get_by_role("heading", name="Live deliveries")).to_be_visible()
    mark_page(page)

    response = tenant.publish("user.created", event_id="live-1")
    assert response.status_code == 202, response.text
    row = page.locator("#live-rows tr", has=page.get_by_role("link", name="live-1"))
    expect(row).to_be_visible(timeout=5_000)
    expect(row.locator("[data-status]")).to_have_text("succeeded", timeout=5_000)
    expect_not_reloaded(page)
    screenshot(page, "console-live")

    page.set_viewport_size({"width": 375, "height": 800})
    assert fits(page)
    row.get_by_role("link", name="live-1").click()
    expect(page.get_by_role("heading", name="Event live-1")).to_be_visible()


def test_an_ended_session_sends_the_live_page_to_the_sign_in_form(
    page: Page, server: LiveServer
) -> None:
    """The live table polls with htmx: once the session has ended, the browser shows the
    whole sign-in page (not a form inside the table), and signing in leads back."""
    sign_in(page, server, "/ui/live")
    expect(page.locator("#live-rows")).to_be_attached()
    page.context.clear_cookies()
    page.wait_for_url(re.compile(r"/ui/login\?next=/ui/live$"), timeout=10_000)
    expect(page.get_by_label("Admin key")).to_be_visible()
    expect(page.locator("#live-rows")).to_have_count(0)
    page.get_by_label("Admin key").fill(ADMIN_KEY)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/ui/live")
    expect(page.get_by_role("heading", name="Live deliveries")).to_be_visible()
