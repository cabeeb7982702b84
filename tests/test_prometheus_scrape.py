"""A real Prometheus scrapes a real webhookd (LiveServer on 127.0.0.1) every second: the
published, delivered, dead-lettered and rate-limited traffic shows up in its queries, every
dashboard and alert expression evaluates (status success = it parses and type-checks), and
the alert rules load and evaluate healthy.

Needs the `prometheus` binary: skipped without it, a failure with WEBHOOKD_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import create_tenant
from tests.fixtures.receiver import Receiver
from tests.fixtures.server import LiveServer, free_port
from tests.test_deploy_files import (
    ALERTS_YML,
    alert_exprs,
    dashboard_exprs,
    grafana_to_promql,
    require_binary,
)

DEADLINE = 30.0  # seconds, for any one wait on Prometheus


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        response = httpx.get(self.url + path, params=params, timeout=5)
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", (path, params, body)
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.get("/api/v1/query", query=expr)
        assert data["resultType"] in ("vector", "scalar"), data
        return data["result"] if data["resultType"] == "vector" else [{"value": data["result"]}]

    def value(self, expr: str) -> float:
        """The summed value of an instant query (0 when it has no result)."""
        return sum(float(sample["value"][1]) for sample in self.query(expr))

    def wait(
        self, what: str, check: Callable[[], bool], detail: Callable[[], object] = lambda: ""
    ) -> None:
        deadline = time.monotonic() + DEADLINE
        while not check():
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{self.log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {DEADLINE}s {detail()}")
            time.sleep(0.25)


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/-/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def prometheus(
    server: LiveServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    binary = require_binary("prometheus")
    workdir = tmp_path_factory.mktemp("prometheus")
    (workdir / "alerts.yml").write_text(ALERTS_YML.read_text())
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": ["alerts.yml"],
        "scrape_configs": [
            {
                "job_name": "webhookd-api",
                "static_configs": [{"targets": [f"127.0.0.1:{server.port}"]}],
            }
        ],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = workdir / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    prom = Prometheus(f"http://127.0.0.1:{port}", process, log)
    try:
        prom.wait("prometheus ready", lambda: _ready(prom.url))
        yield prom
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture(scope="module")
def traffic(
    server: LiveServer, admin: httpx.Client, receiver: Receiver, prometheus: Prometheus
) -> list[str]:
    """One delivered event, one dead-lettered, one publish refused by the rate limit; returns
    the tenant ids once Prometheus has scraped all of it."""
    receiver.plan("/prom-ok", default=200)
    receiver.plan("/prom-dead", default=500)
    ok = create_tenant(server, admin)
    dead = create_tenant(server, admin)
    limited = create_tenant(server, admin, rate_limit=1)
    try:
        ok.add_endpoint(receiver.url("/prom-ok"))
        created = ok.client.post(
            f"/api/v1/tenants/{ok.id}/event-types", json={"name": "order.completed"}
        )
        assert created.status_code == 201, created.text  # catalogued: its own label
        dead.add_endpoint(receiver.url("/prom-dead"))
        assert ok.publish("order.completed").status_code == 202
        assert dead.publish("user.created").status_code == 202
        assert limited.publish().status_code == 202
        assert limited.publish().status_code == 429
    finally:
        for tenant in (ok, dead, limited):
            tenant.client.close()

    def scraped() -> bool:
        return (
            prometheus.value(f'webhook_events_published_total{{tenant="{ok.id}"}}') >= 1
            and prometheus.value(f'webhook_delivery_success_total{{tenant="{ok.id}"}}') >= 1
            and prometheus.value(f'webhook_dead_lettered_total{{tenant="{dead.id}"}}') >= 1
            and prometheus.value(f'webhook_rate_limit_hits_total{{tenant="{limited.id}"}}') >= 1
            and prometheus.value("max(webhook_dlq_size)") >= 1
        )

    prometheus.wait("the test traffic in Prometheus", scraped)
    return [str(ok.id), str(dead.id), str(limited.id)]


def test_published_event_reaches_prometheus(prometheus: Prometheus, traffic: list[str]) -> None:
    # Metrics are process-wide and tenant ids restart in every test database, so other
    # tests' series may share this tenant label: select this test's event type too.
    series = prometheus.query(
        f'webhook_events_published_total{{tenant="{traffic[0]}",event_type="order.completed"}}'
    )
    assert len(series) == 1, series
    ok = series[0]
    assert ok["metric"]["job"] == "webhookd-api"
    assert float(ok["value"][1]) >= 1
    # The dashboard's tenant variable: label_values(webhook_events_published_total, tenant).
    tenants = prometheus.get(
        "/api/v1/label/tenant/values", **{"match[]": "webhook_events_published_total"}
    )
    assert set(traffic) <= set(tenants)


def test_dlq_size_reaches_prometheus(prometheus: Prometheus, traffic: list[str]) -> None:
    (sample,) = prometheus.query('webhook_dlq_size{job="webhookd-api"}')
    assert float(sample["value"][1]) >= 1


def test_every_dashboard_expr_evaluates_and_shows_data(
    prometheus: Prometheus, traffic: list[str]
) -> None:
    exprs = dashboard_exprs()
    assert exprs
    # Parses and type-checks with a selected tenant and with "All".
    for _, expr in exprs:
        prometheus.query(grafana_to_promql(expr, "|".join(traffic)))

    # And each one has something to show after the traffic above (rates need two scrapes).
    def empty() -> list[str]:
        return [t for t, e in exprs if not prometheus.query(grafana_to_promql(e))]

    prometheus.wait("data in every dashboard query", lambda: not empty(), empty)


def test_every_alert_expr_evaluates(prometheus: Prometheus, traffic: list[str]) -> None:
    for _, expr in alert_exprs():
        prometheus.query(expr)


def test_alert_rules_load_and_evaluate_healthy(prometheus: Prometheus) -> None:
    expected = {name for name, _ in alert_exprs()}

    def rules() -> list[dict[str, Any]]:
        groups = prometheus.get("/api/v1/rules")["groups"]
        return [rule for group in groups for rule in group["rules"]]

    def evaluated() -> bool:
        return all(r["health"] != "unknown" for r in rules()) and bool(rules())

    prometheus.wait("every alert rule evaluated", evaluated, rules)
    loaded = rules()
    assert {r["name"] for r in loaded} == expected
    for rule in loaded:
        assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
