"""The deployment and monitoring files: docker-compose.yml, Dockerfile, .env.example, the
Prometheus config and alert rules, the Grafana provisioning and dashboard.

docker-compose and promtool validate what they own. Without them these tests skip, or fail
when WEBHOOKD_REQUIRE_SERVICES=1 (as in CI). tests/test_prometheus_scrape.py evaluates every
dashboard and alert expression on a real Prometheus scraping a real webhookd.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from tests.fixtures.services import services_required
from webhookd import metrics as webhookd_metrics
from webhookd.config import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
MONITORING = ROOT / "monitoring"
PROMETHEUS_YML = MONITORING / "prometheus.yml"
ALERTS_YML = MONITORING / "alerts.yml"
GRAFANA = MONITORING / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "webhookd.json"
DATASOURCE_UID = "prometheus"

# The metric names webhookd exports (src/webhookd/metrics.py), as Prometheus sees them.
METRICS = frozenset(
    {
        "webhook_events_published_total",
        "webhook_delivery_success_total",
        "webhook_delivery_failure_total",
        "webhook_delivery_duration_seconds_bucket",
        "webhook_delivery_duration_seconds_sum",
        "webhook_delivery_duration_seconds_count",
        "webhook_dlq_size",
        "webhook_rate_limit_hits_total",
        "webhook_delivery_attempts_total",
        "webhook_dead_lettered_total",
        "webhook_deliveries_due",
        "webhook_deliveries_in_flight",
    }
)
METRIC_NAME = re.compile(r"webhook_[a-z_]+")
_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count"),
}


def exported_metrics() -> set[str]:
    """The series names src/webhookd/metrics.py defines, as Prometheus stores them."""
    names: set[str] = set()
    for value in vars(webhookd_metrics).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return names


# The brief's services and the ports they publish on the host.
SERVICE_PORTS = {
    "api": {8000},
    "worker": set(),
    "postgres": {5432},
    "redis": {6379},
    "rabbitmq": {5672, 15672},
    "prometheus": {9090},
    "grafana": {3000},
}


# -- helpers shared with tests/test_prometheus_scrape.py ---------------------------------------


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def dashboard_panels() -> list[dict[str, Any]]:
    """Every panel that queries (rows are layout only), nested ones included."""
    found: list[dict[str, Any]] = []
    for panel in dashboard()["panels"]:
        if panel.get("type") == "row":
            found.extend(panel.get("panels", []))
        else:
            found.append(panel)
    return found


def dashboard_exprs() -> list[tuple[str, str]]:
    """(panel title, expr) of every target of every panel."""
    return [(p["title"], t["expr"]) for p in dashboard_panels() for t in p["targets"]]


def alert_exprs() -> list[tuple[str, str]]:
    return [
        (rule["alert"], rule["expr"])
        for group in load_yaml(ALERTS_YML)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def grafana_to_promql(expr: str, tenant: str = ".*") -> str:
    """An expression as Grafana sends it: variables and interval macros filled in."""
    for macro in ("$__rate_interval", "${__rate_interval}", "$__interval", "$__range"):
        expr = expr.replace(macro, "1m")
    return expr.replace("${tenant}", tenant).replace("$tenant", tenant)


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path:
        return path
    message = f"`{name}` is not installed (apt-get install -y docker-compose prometheus)"
    if services_required():
        pytest.fail(message + " and WEBHOOKD_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(message)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a tool from the repository root with a minimal environment (no stray settings)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")}
    return subprocess.run(
        list(args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )


_DEFAULT = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def interpolate_defaults(value: Any) -> Any:
    """docker-compose's ${VAR:-default} with no environment: every default filled in."""
    if isinstance(value, str):
        return _DEFAULT.sub(lambda m: m.group(2) or "", value)
    if isinstance(value, list):
        return [interpolate_defaults(v) for v in value]
    if isinstance(value, dict):
        return {k: interpolate_defaults(v) for k, v in value.items()}
    return value


def published_ports(service: dict[str, Any]) -> set[int]:
    """Host ports of a service, from short ("[ip:]host:container[/proto]") or long syntax."""
    ports: set[int] = set()
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            ports.add(int(entry["published"]))
        else:
            parts = str(entry).split("/", 1)[0].split(":")
            ports.add(int(parts[-2] if len(parts) >= 2 else parts[-1]))
    return ports


def compose_config(env_file: Path) -> str:
    binary = require_binary("docker-compose")
    result = run(binary, "--env-file", str(env_file), "-f", str(COMPOSE), "config")
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def empty_env(tmp_path: Path) -> Path:
    """An empty env file: docker-compose then ignores a developer's .env and uses defaults."""
    path = tmp_path / "empty.env"
    path.write_text("")
    return path


# -- docker-compose.yml --------------------------------------------------------------------------


def test_compose_file_is_valid_for_docker_compose(empty_env: Path) -> None:
    binary = require_binary("docker-compose")
    result = run(binary, "--env-file", str(empty_env), "-f", str(COMPOSE), "config", "-q")
    assert result.returncode == 0, result.stderr


def test_compose_resolves_the_brief_ports(empty_env: Path) -> None:
    services = yaml.safe_load(compose_config(empty_env))["services"]
    for name, ports in SERVICE_PORTS.items():
        assert name in services, name
        assert published_ports(services[name]) == ports, (name, services[name].get("ports"))


def test_env_example_holds_the_compose_defaults(empty_env: Path) -> None:
    """Copying .env.example to .env changes nothing until a value is edited."""
    assert compose_config(ENV_EXAMPLE) == compose_config(empty_env)


def test_compose_services_ports_and_credentials() -> None:
    compose = load_yaml(COMPOSE)
    assert str(compose["version"]).startswith("3")
    services = interpolate_defaults(compose["services"])
    assert set(SERVICE_PORTS) <= set(services)
    for name, ports in SERVICE_PORTS.items():
        assert published_ports(services[name]) == ports, name

    api, worker = services["api"], services["worker"]
    assert api["command"][:2] == ["webhookd", "serve"]
    assert "0.0.0.0" in api["command"]
    assert worker["command"] == ["webhookd", "worker"]
    # Scalable: no fixed name, no host port.
    assert "container_name" not in worker and "ports" not in worker
    for service in (api, worker):
        env = service["environment"]
        assert env["WEBHOOKD_DATABASE_URL"] == (
            "postgresql://webhook_user:webhook_pass@postgres:5432/webhook_db"
        )
        assert env["WEBHOOKD_REDIS_URL"].startswith("redis://redis:6379")
        assert env["WEBHOOKD_BROKER_URL"].startswith(
            "amqp://webhook_user:webhook_pass@rabbitmq:5672/"
        )
        assert env["WEBHOOKD_ENVIRONMENT"] == "production"
        assert env["WEBHOOKD_ADMIN_KEY"]
        assert env["WEBHOOKD_ALLOW_PRIVATE_TARGETS"] == "false"
        assert env["WEBHOOKD_METRICS_PORT"] == "9101"
        for dependency in ("postgres", "redis", "rabbitmq"):
            assert service["depends_on"][dependency]["condition"] == "service_healthy"
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"] == ["webhookd", "migrate"]

    postgres = services["postgres"]["environment"]
    assert (postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"], postgres["POSTGRES_DB"]) == (
        "webhook_user",
        "webhook_pass",
        "webhook_db",
    )
    rabbit = services["rabbitmq"]
    assert rabbit["image"] == "rabbitmq:3-management"
    assert rabbit["environment"]["RABBITMQ_DEFAULT_USER"] == "webhook_user"
    assert rabbit["environment"]["RABBITMQ_DEFAULT_PASS"] == "webhook_pass"
    grafana = services["grafana"]["environment"]
    assert (grafana["GF_SECURITY_ADMIN_USER"], grafana["GF_SECURITY_ADMIN_PASSWORD"]) == (
        "admin",
        "admin",
    )
    for name in ("api", "worker", "postgres", "redis", "rabbitmq", "prometheus", "grafana"):
        assert "healthcheck" in services[name], name
    assert {"postgres_data", "grafana_data"} <= set(compose["volumes"])


def test_compose_mounts_the_monitoring_files() -> None:
    services = load_yaml(COMPOSE)["services"]
    mounts = {
        name: {v.split(":")[0]: v.split(":")[1] for v in services[name]["volumes"]}
        for name in ("prometheus", "grafana")
    }
    assert mounts["prometheus"]["./monitoring/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    assert mounts["prometheus"]["./monitoring/alerts.yml"] == "/etc/prometheus/alerts.yml"
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]
    assert mounts["grafana"]["./monitoring/grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = load_yaml(GRAFANA / "provisioning" / "dashboards" / "webhookd.yml")["providers"][0]
    assert provider["type"] == "file"
    assert mounts["grafana"]["./monitoring/grafana/dashboards"] == provider["options"]["path"]
    for source in [*mounts["prometheus"], *mounts["grafana"]]:
        if source.startswith("./"):
            assert (ROOT / source).exists(), source


def test_env_example_documents_every_variable() -> None:
    text = ENV_EXAMPLE.read_text()
    assigned = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))
    compose = re.sub(r"^\s*#.*$", "", COMPOSE.read_text(), flags=re.MULTILINE)
    used_by_compose = set(re.findall(r"\$\{(\w+)", compose))
    assert used_by_compose - assigned == set()
    # Everything webhookd reads (WEBHOOKD_ prefix), commented out where compose sets it.
    settings = {f"WEBHOOKD_{name.upper()}" for name in Settings.model_fields}
    assert settings - assigned == set()
    active = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))
    assert active <= used_by_compose, "an uncommented variable that docker-compose ignores"


def test_dockerfile_runs_the_api_unprivileged_with_a_healthcheck() -> None:
    text = DOCKERFILE.read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, flags=re.MULTILINE)
    assert froms and all(image == "python:3.11-slim" for image in froms)
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r'^RUN .*pip install "\.\[server\]"', text, flags=re.MULTILINE)
    healthcheck = re.search(r"^HEALTHCHECK .*?CMD (.*)$", text, flags=re.MULTILINE | re.DOTALL)
    assert healthcheck and "/health" in healthcheck.group(1)
    cmd = re.findall(r"^CMD\s+(\[.*\])$", text, flags=re.MULTILINE)
    assert json.loads(cmd[-1])[:4] == ["webhookd", "serve", "--host", "0.0.0.0"]
    # Everything `pip install .` needs is copied, and not ignored.
    ignored = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()}
    for needed in ("pyproject.toml", "README.md", "src"):
        assert needed in text and needed not in ignored
    assert {".env", ".venv", ".git", "*.db", "*.admin-key"} <= ignored


# -- Prometheus --------------------------------------------------------------------------------


def test_promtool_accepts_the_config() -> None:
    promtool = require_binary("promtool")
    result = run(promtool, "check", "config", str(PROMETHEUS_YML))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_rules() -> None:
    promtool = require_binary("promtool")
    result = run(promtool, "check", "rules", str(ALERTS_YML))
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_the_api_and_discovers_the_workers() -> None:
    config = load_yaml(PROMETHEUS_YML)
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    api = jobs["webhookd-api"]
    assert api.get("metrics_path", "/metrics") == "/metrics"
    assert api["static_configs"][0]["targets"] == ["api:8000"]
    (dns,) = jobs["webhookd-worker"]["dns_sd_configs"]
    assert (dns["names"], dns["type"], dns["port"]) == (["worker"], "A", 9101)
    # Alerts name only jobs that exist.
    for name, expr in alert_exprs():
        for job in re.findall(r'job="([^"]+)"', expr):
            assert job in jobs, (name, job)


def test_alert_rules_cover_dlq_success_rate_backlog_and_workers() -> None:
    exprs = dict(alert_exprs())
    joined = "\n".join(exprs.values())
    for metric in (
        "webhook_dlq_size",
        "webhook_dead_lettered_total",
        "webhook_delivery_success_total",
        "webhook_delivery_failure_total",
        "webhook_deliveries_due",
    ):
        assert metric in joined, metric
    assert 'up{job="webhookd-worker"} == 0' in joined
    exported = exported_metrics()
    for name, expr in exprs.items():
        assert set(METRIC_NAME.findall(expr)) <= exported, name


def test_the_brief_metric_names_are_exported() -> None:
    assert METRICS - exported_metrics() == set()


ALERT_TESTS = """
evaluation_interval: 1m
tests:
  # Total outage: failures and not one success. The rate must still be computed (as 0).
  - interval: 1m
    input_series:
      - series: 'webhook_delivery_failure_total{tenant="1",reason="timeout",job="webhookd-worker"}'
        values: '0+60x40'
    alert_rule_test:
      - eval_time: 25m
        alertname: WebhookdDeliverySuccessRateLow
        exp_alerts: [{exp_labels: {severity: warning}}]
  # 90% success at 100 attempts a minute: fires after 10 minutes, not before.
  - interval: 1m
    input_series:
      - series: 'webhook_delivery_success_total{tenant="1",job="webhookd-worker"}'
        values: '0+90x40'
      - series: 'webhook_delivery_failure_total{tenant="1",reason="http_status"}'
        values: '0+10x40'
    alert_rule_test:
      - eval_time: 8m
        alertname: WebhookdDeliverySuccessRateLow
        exp_alerts: []
      - eval_time: 25m
        alertname: WebhookdDeliverySuccessRateLow
        exp_alerts: [{exp_labels: {severity: warning}}]
  # Healthy but quiet: a bad ratio over too few attempts does not page.
  - interval: 1m
    input_series:
      - series: 'webhook_delivery_success_total{tenant="1",job="webhookd-worker"}'
        values: '0+1x40'
      - series: 'webhook_delivery_failure_total{tenant="1",reason="timeout",job="webhookd-worker"}'
        values: '0+1x40'
    alert_rule_test:
      - eval_time: 30m
        alertname: WebhookdDeliverySuccessRateLow
        exp_alerts: []
  # The DLQ grows by 2 a minute (the API exports it; a worker exports a constant 0).
  - interval: 1m
    input_series:
      - series: 'webhook_dlq_size{job="webhookd-api",instance="api:8000"}'
        values: '0+2x40'
      - series: 'webhook_dlq_size{job="webhookd-worker",instance="w1:9101"}'
        values: '0x40'
      - series: 'webhook_dead_lettered_total{tenant="7",job="webhookd-worker"}'
        values: '0+2x40'
    alert_rule_test:
      - eval_time: 25m
        alertname: WebhookdDLQGrowing
        exp_alerts: [{exp_labels: {severity: warning}}]
      - eval_time: 25m
        alertname: WebhookdDeadLettering
        exp_alerts: [{exp_labels: {severity: info, tenant: "7"}}]
  # A DLQ that is large but stable does not alert.
  - interval: 1m
    input_series:
      - series: 'webhook_dlq_size{job="webhookd-api",instance="api:8000"}'
        values: '500x40'
    alert_rule_test:
      - eval_time: 30m
        alertname: WebhookdDLQGrowing
        exp_alerts: []
  # Backlog above 1000 and rising for 10 minutes; a high but draining backlog is fine.
  - interval: 1m
    input_series:
      - series: 'webhook_deliveries_due{job="webhookd-api",instance="api:8000"}'
        values: '1000+20x40'
    alert_rule_test:
      - eval_time: 30m
        alertname: WebhookdBacklogGrowing
        exp_alerts: [{exp_labels: {severity: warning}}]
  - interval: 1m
    input_series:
      - series: 'webhook_deliveries_due{job="webhookd-api",instance="api:8000"}'
        values: '5000-20x40'
    alert_rule_test:
      - eval_time: 30m
        alertname: WebhookdBacklogGrowing
        exp_alerts: []
  # One worker of two stops answering; then none is left.
  - interval: 1m
    input_series:
      - series: 'up{job="webhookd-worker",instance="w1:9101"}'
        values: '1x20'
      - series: 'up{job="webhookd-worker",instance="w2:9101"}'
        values: '1 1 0x20'
    alert_rule_test:
      - eval_time: 6m
        alertname: WebhookdWorkerDown
        exp_alerts:
          - exp_labels: {severity: critical, job: webhookd-worker, instance: "w2:9101"}
      - eval_time: 6m
        alertname: WebhookdNoWorkers
        exp_alerts: []
  - interval: 1m
    input_series:
      - series: 'up{job="webhookd-worker",instance="w1:9101"}'
        values: '0x20'
      - series: 'up{job="webhookd-api",instance="api:8000"}'
        values: '1x20'
    alert_rule_test:
      - eval_time: 6m
        alertname: WebhookdNoWorkers
        exp_alerts: [{exp_labels: {severity: critical}}]
      - eval_time: 6m
        alertname: WebhookdApiDown
        exp_alerts: []
  # Redis errors for 10 minutes; the broker is fine.
  - interval: 1m
    input_series:
      - series: 'webhook_rate_limiter_errors_total{job="webhookd-api",instance="api:8000"}'
        values: '0+5x20'
      - series: 'webhook_broker_publish_failures_total{job="webhookd-api",instance="api:8000"}'
        values: '0x20'
    alert_rule_test:
      - eval_time: 10m
        alertname: WebhookdRateLimiterUnavailable
        exp_alerts: [{exp_labels: {severity: warning}}]
      - eval_time: 10m
        alertname: WebhookdBrokerPublishFailing
        exp_alerts: []
"""


def test_alert_rules_fire_when_they_should(tmp_path: Path) -> None:
    """promtool's rule unit tests on synthetic series (annotations left out: logic only)."""
    promtool = require_binary("promtool")
    rules = load_yaml(ALERTS_YML)
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules))
    tests = yaml.safe_load(ALERT_TESTS)
    tests["rule_files"] = ["alerts.yml"]
    (tmp_path / "alerts_test.yml").write_text(yaml.safe_dump(tests))
    result = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- Grafana -----------------------------------------------------------------------------------


def test_grafana_datasource_is_the_compose_prometheus() -> None:
    config = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
    (source,) = config["datasources"]
    assert (source["uid"], source["type"]) == (DATASOURCE_UID, "prometheus")
    assert source["url"] == "http://prometheus:9090"


def test_dashboard_json_structure() -> None:
    board = dashboard()
    assert board["uid"] == "webhookd-overview"
    assert board["title"]
    assert 36 <= board["schemaVersion"] <= 41
    (variable,) = board["templating"]["list"]
    assert variable["name"] == "tenant"
    assert variable["datasource"]["uid"] == DATASOURCE_UID
    assert variable["query"]["query"] == "label_values(webhook_events_published_total, tenant)"
    panels = dashboard_panels()
    assert len({p["id"] for p in panels}) == len(panels)
    cells: dict[tuple[int, int], str] = {}  # the 24-column grid: no two panels overlap
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, (panel["title"], cells.get((x, y)))
                cells[(x, y)] = panel["title"]
    for panel in panels:
        title = panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}, title
        assert panel["targets"], title
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), title
        for target in panel["targets"]:
            assert target.get("datasource", panel["datasource"])["uid"] == DATASOURCE_UID, title
            assert target["expr"].strip(), title
            assert target["refId"], title


def test_dashboard_has_the_brief_panels() -> None:
    by_title = {p["title"]: " ".join(t["expr"] for t in p["targets"]) for p in dashboard_panels()}
    expected = {
        "Event throughput by event type": ("webhook_events_published_total", "event_type"),
        "Delivery success rate": ("webhook_delivery_success_total", "webhook_delivery_failure"),
        "Deliveries per second: success vs failure by reason": ("reason",),
        "Retry attempt distribution": ("webhook_delivery_attempts_total", "attempt"),
        "DLQ size over time": ("webhook_dlq_size",),
        "Backlog (due) and in flight": ("webhook_deliveries_due", "webhook_deliveries_in_flight"),
        "Delivery latency p50 / p95 / p99": (
            "histogram_quantile(0.5,",
            "histogram_quantile(0.95,",
            "histogram_quantile(0.99,",
            "webhook_delivery_duration_seconds_bucket",
        ),
        "Per-tenant throughput": ("by (tenant)", "$tenant"),
        "Per-tenant delivery failure rate": ("by (tenant)", "$tenant", "failure"),
        "Rate-limit hits per tenant": ("webhook_rate_limit_hits_total", "by (tenant)"),
    }
    for title, fragments in expected.items():
        assert title in by_title, title
        for fragment in fragments:
            assert fragment in by_title[title], (title, fragment)


def test_dashboard_uses_only_exported_metrics() -> None:
    for title, expr in dashboard_exprs():
        names = set(METRIC_NAME.findall(expr))
        assert names, (title, expr)
        assert names <= METRICS, (title, names - METRICS)


def test_dashboard_exprs_parse_as_promql(tmp_path: Path) -> None:
    """promtool parses each expression (as a recording rule); the scrape test runs them."""
    promtool = require_binary("promtool")
    rules = [
        {"record": f"dashboard:expr_{i}", "expr": grafana_to_promql(expr)}
        for i, (_, expr) in enumerate(dashboard_exprs())
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run(promtool, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
