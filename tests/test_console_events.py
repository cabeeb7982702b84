"""The operator console's event log, event pages, dead-letter queue and live view over plain
HTTP (no JavaScript): search and pages, attempts and the request as sent, replay, retry,
resolve, "retry all matching" as a background job, the live table's rows."""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from markupsafe import escape

from tests.conftest import TenantCtx
from tests.fixtures.db import run_sql
from tests.fixtures.delivery import wait_deliveries, wait_final, wait_until
from tests.fixtures.receiver import Receiver
from tests.fixtures.server import ADMIN_KEY, LiveServer, running_server

ODD_ID = 'odd"&<id>+1;[x]'  # an event_id that must be quoted in a link


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[LiveServer]:
    """Two attempts per cycle, so deliveries die within a fraction of a second; jobs in
    batches of two, so that a retry of five entries takes three batches."""
    with running_server(
        tmp_path_factory, "console-events", backend=backend, max_attempts=2, job_batch_size=2
    ) as srv:
        yield srv


class Console:
    """A signed-in operator's browser, without JavaScript."""

    def __init__(self, client: httpx.Client, csrf: str) -> None:
        self.client = client
        self.csrf = csrf

    def get(self, path: str, **params: str) -> httpx.Response:
        return self.client.get(path, params=params or None)

    def post(self, path: str, **fields: str) -> httpx.Response:
        return self.client.post(path, data={"csrf": self.csrf, **fields})


@pytest.fixture
def console(server: LiveServer) -> Iterator[Console]:
    with httpx.Client(base_url=server.url, follow_redirects=False, timeout=10) as client:
        response = client.post("/ui/login", data={"admin_key": ADMIN_KEY})
        assert response.status_code == 303, response.text
        found = re.search(r'name="csrf" value="([^"]+)"', client.get("/ui").text)
        assert found
        yield Console(client, found.group(1))


def unescape(text: str) -> str:
    return (
        text.replace("&#34;", '"')
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
    )


def event_ids(html: str) -> list[str]:
    return [
        unescape(m)
        for m in re.findall(r'<td[^>]*><a href="/ui/tenants/[^"]+/events/[^"]+">([^<]*)</a>', html)
    ]


def next_url(html: str) -> str | None:
    found = re.search(r'<a href="([^"]+)" rel="next">', html)
    return unescape(found.group(1)) if found else None


def publish(tenant: TenantCtx, event_id: str, event_type: str = "user.created", **payload) -> None:
    response = tenant.publish(event_type, event_id=event_id, **payload)
    assert response.status_code == 202, response.text


def dead(tenant: TenantCtx, event_id: str, event_type: str = "user.created") -> None:
    publish(tenant, event_id, event_type)
    wait_deliveries(
        tenant.client, event_id, lambda ds: bool(ds) and all(d["status"] == "dead" for d in ds)
    )


def next_second() -> dt.datetime:
    """Sleep past the next whole second (UTC) and return it: a moment between publishes."""
    now = dt.datetime.now(dt.UTC)
    mark = dt.datetime.fromtimestamp(math.ceil(now.timestamp()) + 0.0, dt.UTC)
    time.sleep((mark - now).total_seconds() + 0.05)
    return mark


def local(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


# -- the event log -------------------------------------------------------------------------


def test_pages_need_a_session(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, follow_redirects=False, timeout=10) as client:
        for path in ("/ui/live", "/ui/live/rows", "/ui/tenants/tnt_x/events", "/ui/tenants/x/dlq"):
            response = client.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/ui/login?next=")


def test_a_time_window_far_back_lists_by_publication_time_page_by_page(
    console: Console, server: LiveServer, tenant: TenantCtx
) -> None:
    """With a time window, newest means published last, whatever the row order; the
    pages of a window far back (read from the time index, not by walking back through
    every newer event) hold each event once."""
    count = 53  # one page of 50, and three more
    names = [f"window-{n:02d}" for n in range(count)]
    for name in names:
        publish(tenant, name)
    publish(tenant, "window-recent")
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=10)
    moments = {name: start + dt.timedelta(minutes=(n * 37) % count) for n, name in enumerate(names)}
    for name, moment in moments.items():  # publication times in another order than the rows'
        run_sql(
            server.settings,
            "UPDATE events SET created_at = :at WHERE event_id = :e",
            at=moment,
            e=name,
        )
    expected = sorted(names, key=lambda name: moments[name], reverse=True)

    base = f"/ui/tenants/{tenant.id}/events"
    first = console.get(base, until=local(start + dt.timedelta(days=1)))
    assert first.status_code == 200, first.text
    assert event_ids(first.text) == expected[:50]
    more = next_url(first.text)
    assert more is not None
    second = console.get(more)
    assert event_ids(second.text) == expected[50:]
    assert next_url(second.text) is None
    half = dt.timedelta(seconds=30)  # the form's times are to the second: around each
    window = console.get(
        base,
        since=local(moments[expected[20]] - half),
        until=local(moments[expected[10]] + half),
    )
    assert event_ids(window.text) == expected[10:21]


def test_event_log_searches_by_id_type_status_and_time(
    console: Console, tenant: TenantCtx, receiver: Receiver
) -> None:
    receiver.plan("/events/ok")
    receiver.plan("/events/down", default=500)
    tenant.add_endpoint(receiver.url("/events/ok"), event_types=["user.created"])
    tenant.add_endpoint(receiver.url("/events/down"), event_types=["order.failed"])
    publish(tenant, "search-a", "user.created")
    wait_final(tenant.client, "search-a")
    mark = next_second()
    publish(tenant, ODD_ID, "user.created")
    dead(tenant, "search-dead", "order.failed")
    wait_final(tenant.client, ODD_ID)
    base = f"/ui/tenants/{tenant.id}/events"

    page = console.get(base)
    assert page.status_code == 200, page.text
    assert event_ids(page.text) == ["search-dead", ODD_ID, "search-a"]  # newest first
    # The odd event_id is quoted in its link, and the link leads to it.
    link = f"{base}/{quote(ODD_ID, safe='')}"
    assert f'href="{link}"' in page.text
    detail = console.get(link)
    assert detail.status_code == 200 and "Event <code>" in detail.text
    assert str(escape(ODD_ID)) in detail.text

    assert event_ids(console.get(base, event_id=ODD_ID).text) == [ODD_ID]
    assert event_ids(console.get(base, event_id="search-nope").text) == []
    assert event_ids(console.get(base, event_type="order.failed").text) == ["search-dead"]
    assert event_ids(console.get(base, status="dead").text) == ["search-dead"]
    assert event_ids(console.get(base, status="succeeded").text) == [ODD_ID, "search-a"]
    assert event_ids(console.get(base, status="succeeded", event_type="user.created").text) == [
        ODD_ID,
        "search-a",
    ]
    assert event_ids(console.get(base, event_id="search-a", status="dead").text) == []
    assert event_ids(console.get(base, since=local(mark)).text) == ["search-dead", ODD_ID]
    assert event_ids(console.get(base, until=local(mark)).text) == ["search-a"]
    assert event_ids(console.get(base, since=local(mark), status="dead").text) == ["search-dead"]
    assert event_ids(console.get(base, until=local(mark), status="succeeded").text) == ["search-a"]
    # The search stays in the form.
    searched = console.get(base, event_type="order.failed", since=local(mark))
    assert 'value="order.failed"' in searched.text and f'value="{local(mark)}"' in searched.text

    wrong = console.get(base, since="yesterday")
    assert wrong.status_code == 422
    assert 'id="f-since" name="since"' in wrong.text and 'aria-invalid="true"' in wrong.text
    assert 'role="alert"' in wrong.text
    backwards = console.get(base, since=local(mark), until=local(mark - dt.timedelta(hours=1)))
    assert backwards.status_code == 422 and "must not be before since" in backwards.text
    assert console.get(base, status="lost").status_code == 422


def test_event_log_pages_with_a_cursor(
    console: Console, tenant: TenantCtx, receiver: Receiver
) -> None:
    receiver.plan("/events/pages-a", default=500)
    receiver.plan("/events/pages-b", default=500)
    tenant.add_endpoint(receiver.url("/events/pages-a"))
    tenant.add_endpoint(receiver.url("/events/pages-b"))  # two dead deliveries per event
    names = [f"page-{n:02}" for n in range(53)]
    for name in names:
        publish(tenant, name)
    for name in names:
        wait_deliveries(
            tenant.client, name, lambda ds: len(ds) == 2 and all(d["status"] == "dead" for d in ds)
        )
    newest_first = list(reversed(names))
    base = f"/ui/tenants/{tenant.id}/events"

    for params in ({}, {"status": "dead"}):
        pages: list[list[str]] = []
        url: str | None = base + ("?status=dead" if params else "")
        for _ in range(5):  # bounded
            assert url is not None
            page = console.client.get(url)
            assert page.status_code == 200, page.text
            pages.append(event_ids(page.text))
            url = next_url(page.text)
            if url is None:
                break
            assert "before=" in url and "offset" not in url
            assert ("status=dead" in url) == bool(params)  # the search goes on to the next page
        assert [len(p) for p in pages] == [50, 3], params
        assert [e for p in pages for e in p] == newest_first, params
    assert console.get(base, before="-1").status_code == 422


# -- one event -----------------------------------------------------------------------------


def test_event_page_shows_attempts_and_the_request_as_sent(
    console: Console, tenant: TenantCtx, receiver: Receiver
) -> None:
    receiver.plan("/events/detail", 500, default=200, body=b"receiver says hi")
    endpoint = tenant.add_endpoint(
        receiver.url("/events/detail"),
        headers={"Authorization": "Bearer s3cret-value", "X-Team": "blue"},
    )
    publish(tenant, "detail-1", "order.created", amount=42, note="<b>bold</b>")
    delivery = wait_final(tenant.client, "detail-1")
    assert delivery["status"] == "succeeded"
    sent = receiver.received("/events/detail")[-1]

    page = console.get(f"/ui/tenants/{tenant.id}/events/detail-1")
    assert page.status_code == 200, page.text
    html = page.text
    assert delivery["id"] in html and endpoint["id"] in html
    assert 'data-status="succeeded"' in html
    # Both attempts: the failed one with its answer, then the success.
    assert "http_status" in html and "receiver answered HTTP 500" in html
    assert html.count("receiver says hi") == 2
    assert re.search(r"<td>1</td>\s*<td>1</td>", html) and re.search(
        r"<td>1</td>\s*<td>2</td>", html
    )
    # The payload, pretty, escaped.
    assert "&#34;amount&#34;: 42" in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    # The request as sent: the very body, webhookd's headers, secrets redacted.
    assert str(escape(sent.body.decode())) in html
    assert "<code>webhook-signature</code></th><td><code>[redacted]</code>" in html
    assert "<code>X-Webhook-Signature</code></th><td><code>[redacted]</code>" in html
    assert sent.header("webhook-signature") not in html
    assert f"<code>webhook-id</code></th><td><code>{delivery['id']}</code>" in html
    assert "<code>User-Agent</code></th><td><code>webhookd/" in html
    assert "<code>Content-Type</code></th><td><code>application/json</code>" in html
    assert "<code>X-Team</code></th><td><code>blue</code>" in html
    assert "<code>Authorization</code></th><td><code>[redacted]</code>" in html
    assert "s3cret-value" not in html
    assert sent.header("webhook-id") == delivery["id"]


def test_replay_sends_the_event_again(
    console: Console, tenant: TenantCtx, receiver: Receiver
) -> None:
    receiver.plan("/events/replay")
    tenant.add_endpoint(receiver.url("/events/replay"))
    publish(tenant, "replay-1")
    wait_final(tenant.client, "replay-1")
    receiver.wait_for(1, "/events/replay")
    path = f"/ui/tenants/{tenant.id}/events/replay-1/replay"

    refused = console.client.post(path, data={})
    assert refused.status_code == 403 and "CSRF" in refused.text
    foreign = console.client.post(
        path, data={"csrf": console.csrf}, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403
    assert len(receiver.received("/events/replay")) == 1

    replayed = console.post(path)
    assert replayed.status_code == 200, replayed.text
    assert "Replayed: 1 sent again." in replayed.text and 'role="status"' in replayed.text
    receiver.wait_for(2, "/events/replay")
    after = wait_deliveries(
        tenant.client, "replay-1", lambda ds: ds[0]["status"] == "succeeded" and ds[0]["cycle"] == 2
    )
    assert len(after[0]["attempts"]) == 2


def test_another_tenants_event_is_not_found(
    console: Console, tenant: TenantCtx, other_tenant: TenantCtx
) -> None:
    publish(tenant, "mine-only")
    assert console.get(f"/ui/tenants/{tenant.id}/events/mine-only").status_code == 200
    other = console.get(f"/ui/tenants/{other_tenant.id}/events/mine-only")
    assert other.status_code == 404 and "text/html" in other.headers["content-type"]
    assert "Not found" in other.text
    assert event_ids(console.get(f"/ui/tenants/{other_tenant.id}/events").text) == []
    replay = console.post(f"/ui/tenants/{other_tenant.id}/events/mine-only/replay")
    assert replay.status_code == 404
    missing = console.get("/ui/tenants/tnt_01JEKX6V4W8S8N0C7W0R6FQ2ZB/events")
    assert missing.status_code == 404


# -- the dead-letter queue -----------------------------------------------------------------


def entries(html: str) -> list[str]:
    return re.findall(r'data-entry="(dlq_\w+)"', html)


def test_dlq_retry_one_and_resolve_one(
    console: Console, tenant: TenantCtx, other_tenant: TenantCtx, receiver: Receiver
) -> None:
    receiver.plan("/dlq/one", default=500)
    receiver.plan("/dlq/other", default=500)
    one = tenant.add_endpoint(receiver.url("/dlq/one"), event_types=["order.failed"])
    tenant.add_endpoint(receiver.url("/dlq/other"), event_types=["user.created"])
    dead(tenant, "dlq-a", "order.failed")
    dead(tenant, "dlq-b", "order.failed")
    dead(tenant, "dlq-c", "user.created")
    base = f"/ui/tenants/{tenant.id}/dlq"

    page = console.get(base)
    assert page.status_code == 200
    assert len(entries(page.text)) == 3
    filtered = console.get(base, endpoint_id=one["id"])
    assert len(entries(filtered.text)) == 2 and "dlq-c" not in filtered.text
    assert len(entries(console.get(base, event_type="user.created").text)) == 1
    assert entries(console.get(base, event_type="nothing.here").text) == []
    assert console.get(base, event_type="bad type!").status_code == 422
    b_entry, a_entry = entries(filtered.text)  # newest first
    assert console.get(f"/ui/tenants/{other_tenant.id}/dlq").text.count("data-entry=") == 0

    refused = console.client.post(f"{base}/{a_entry}/retry", data={})
    assert refused.status_code == 403
    receiver.plan("/dlq/one", default=200)
    before = len(receiver.received("/dlq/one"))
    retried = console.post(f"{base}/{a_entry}/retry", endpoint_id=one["id"])
    assert retried.status_code == 303
    assert retried.headers["location"] == f"{base}?endpoint_id={one['id']}&notice=retried"
    shown = console.client.get(retried.headers["location"])
    assert "Sent again" in shown.text and entries(shown.text) == [b_entry]
    receiver.wait_for(before + 1, "/dlq/one")
    assert wait_final(tenant.client, "dlq-a")["status"] == "succeeded"
    assert console.post(f"{base}/{a_entry}/retry").status_code == 409  # resolved already

    resolved = console.post(f"{base}/{b_entry}/resolve")
    assert resolved.status_code == 303 and resolved.headers["location"].endswith("notice=resolved")
    assert entries(console.get(base, endpoint_id=one["id"]).text) == []
    everything = console.get(base, endpoint_id=one["id"], resolved="on").text
    assert entries(everything) == [b_entry, a_entry]
    assert "discarded" in everything and "retried" in everything
    # Another tenant's entry: not found.
    assert console.post(f"/ui/tenants/{other_tenant.id}/dlq/{b_entry}/resolve").status_code == 404


def test_dlq_retry_all_matching_runs_as_a_job(
    console: Console,
    server: LiveServer,
    admin: httpx.Client,
    tenant: TenantCtx,
    other_tenant: TenantCtx,
    receiver: Receiver,
) -> None:
    receiver.plan("/dlq/bulk", default=500)
    tenant.add_endpoint(receiver.url("/dlq/bulk"))
    names = [f"bulk-{n}" for n in range(5)]
    for name in names:
        publish(tenant, name, "order.failed")
    dead(tenant, "bulk-other", "user.created")
    for name in names:
        wait_deliveries(tenant.client, name, lambda ds: bool(ds) and ds[0]["status"] == "dead")
    sent_before = len(receiver.received("/dlq/bulk"))
    receiver.plan("/dlq/bulk", default=200)
    base = f"/ui/tenants/{tenant.id}/dlq"

    assert console.client.post(f"{base}/retry-all", data={}).status_code == 403
    started = console.post(f"{base}/retry-all", event_type="order.failed")
    assert started.status_code == 303, started.text
    location = started.headers["location"]
    job_id = re.fullmatch(rf"/ui/tenants/{tenant.id}/jobs/(job_\w+)", location).group(1)

    def finished() -> dict | None:
        job = tenant.client.get(f"/api/v1/jobs/{job_id}").json()
        return job if job["status"] in ("succeeded", "failed") else None

    job = wait_until(finished, what="the retry job's end")
    assert job["kind"] == "retry_dead_letters" and job["status"] == "succeeded", job
    assert (job["total"], job["done"], job["failed"]) == (5, 5, 0)
    assert job["params"]["event_type"] == "order.failed" and job["endpoint_id"] is None
    receiver.wait_for(sent_before + 5, "/dlq/bulk")
    for name in names:
        assert wait_final(tenant.client, name)["status"] == "succeeded"
    left = console.get(base).text
    assert "bulk-other" in left and len(entries(left)) == 1  # not of the type: not retried
    assert admin.get(f"/api/v1/jobs/{job_id}").json()["kind"] == "retry_dead_letters"

    page = console.client.get(location)
    assert page.status_code == 200
    assert 'data-job-status="succeeded"' in page.text and 'data-job="done">5<' in page.text
    assert "Refresh" in page.text and 'hx-trigger="every 1s"' not in page.text  # ended
    progress = console.client.get(f"{location}/progress")
    assert progress.status_code == 286  # htmx: swap this in and stop polling
    assert 'data-job="total">5<' in progress.text and "<html" not in progress.text
    assert console.get(f"/ui/tenants/{other_tenant.id}/jobs/{job_id}").status_code == 404
    assert other_tenant.client.get(f"/api/v1/jobs/{job_id}").status_code == 404


def test_a_running_job_polls_its_progress(console: Console, tenant: TenantCtx) -> None:
    """With no entry at all, the job is queued when the page first shows it, or already
    done: either way its page reads without JavaScript."""
    started = console.post(f"/ui/tenants/{tenant.id}/dlq/retry-all")
    assert started.status_code == 303
    page = console.client.get(started.headers["location"])
    assert page.status_code == 200
    status = re.search(r'data-job-status="(\w+)"', page.text).group(1)
    if status in ("queued", "running"):
        assert 'hx-trigger="every 1s"' in page.text
    else:
        assert status == "succeeded" and 'data-job="total">0<' in page.text


# -- live ----------------------------------------------------------------------------------


def test_live_rows_show_new_deliveries(
    console: Console, tenant: TenantCtx, receiver: Receiver
) -> None:
    receiver.plan("/live/rows")
    tenant.add_endpoint(receiver.url("/live/rows"))
    page = console.get("/ui/live")
    assert page.status_code == 200
    assert 'hx-get="/ui/live/rows"' in page.text and 'hx-trigger="every 2s"' in page.text
    assert '<a href="/ui/live">Refresh</a>' in page.text and "<tbody" in page.text

    publish(tenant, ODD_ID)
    wait_final(tenant.client, ODD_ID)
    rows = console.get("/ui/live/rows")
    assert rows.status_code == 200 and "<html" not in rows.text
    assert str(escape(ODD_ID)) in rows.text
    assert f"/ui/tenants/{tenant.id}/events/{quote(ODD_ID, safe='')}" in rows.text
    assert rows.text.count("<tr") <= 50
    first = re.search(r'data-delivery="(dlv_\w+)"', rows.text).group(1)
    assert first == wait_final(tenant.client, ODD_ID)["id"]  # newest first


# -- links ---------------------------------------------------------------------------------


def delivery_links(html: str) -> dict[str, str]:
    """Delivery id → the link it carries, for each delivery id shown as a link."""
    found = re.findall(r'<a href="(/ui/tenants/[^"#]+/events/[^"#]+)#(dlv_\w+)"><code>\2<', html)
    return {delivery: unescape(path) for path, delivery in found}


def test_delivery_ids_link_to_their_event(
    console: Console, tenant: TenantCtx, receiver: Receiver
) -> None:
    """Wherever the console shows a delivery id (live view, dead letters, the endpoint's
    page), it links to the page of the delivery's event, at that delivery."""
    receiver.plan("/links", default=500)
    endpoint = tenant.add_endpoint(receiver.url("/links"), event_types=["link.dead"])
    dead(tenant, ODD_ID + "-link", "link.dead")
    delivery = wait_final(tenant.client, ODD_ID + "-link")["id"]
    event_page = f"/ui/tenants/{tenant.id}/events/{quote(ODD_ID + '-link', safe='')}"
    pages = {
        "live": console.get("/ui/live/rows").text,
        "dlq": console.get(f"/ui/tenants/{tenant.id}/dlq", event_type="link.dead").text,
        "endpoint": console.get(f"/ui/tenants/{tenant.id}/endpoints/{endpoint['id']}").text,
    }
    for name, html in pages.items():
        assert delivery_links(html).get(delivery) == event_page, name
    # The endpoint page's health names the last error's delivery too.
    assert pages["endpoint"].count(f'{event_page}#{delivery}"') == 2
    shown = console.get(event_page)
    assert shown.status_code == 200 and f'<article class="delivery" id="{delivery}"' in shown.text
