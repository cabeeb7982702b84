"""Settings: one typed object, read from the environment (prefix ``WEBHOOKD_``) and passed in."""

from __future__ import annotations

import functools
import ipaddress
import re
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def async_database_url(url: str) -> str:
    """Map plain ``sqlite://`` / ``postgresql://`` URLs to their async drivers."""
    if url.startswith("sqlite:"):
        return "sqlite+aiosqlite:" + url[len("sqlite:") :]
    for prefix in ("postgresql:", "postgres:"):
        if url.startswith(prefix):
            return "postgresql+asyncpg:" + url[len(prefix) :]
    return url


def mask_password(url: str) -> str:
    """``scheme://user:***@host/...``: the URL without its password."""
    return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WEBHOOKD_", extra="ignore", populate_by_name=True)

    environment: Literal["development", "production"] = "development"
    database_url: str = Field(
        default="sqlite:///./webhookd.db",
        validation_alias=AliasChoices("WEBHOOKD_DATABASE_URL", "DATABASE_URL", "database_url"),
    )
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("WEBHOOKD_REDIS_URL", "REDIS_URL", "redis_url")
    )
    broker_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("WEBHOOKD_BROKER_URL", "CELERY_BROKER_URL", "broker_url"),
    )
    admin_key: str | None = None
    # Development only: where a generated admin key and server secrets are kept for a
    # PostgreSQL database (for SQLite they sit beside the database file).
    state_dir: Path = Path("~/.local/state/webhookd")
    encryption_key: str | None = None  # Fernet key(s), comma-separated: the first encrypts
    api_key_pepper: str | None = None
    auth_failures_per_minute: int = Field(default=30, ge=1)
    # Seconds an API process remembers an authenticated key (0: never). A rotated key keeps
    # working on *other* API processes for at most this long (docs/SECURITY.md).
    api_key_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    # Seconds an API process keeps a tenant's event-type catalog (schemas, strict flag): a
    # change made through another API process applies here within this long.
    event_type_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    allow_private_targets: bool = False
    # Operator allow-list: CIDRs that endpoints may target although they are private
    # (comma-separated, e.g. "10.20.0.0/16,fd00:1::/64"). Empty: none.
    allowed_networks: str = ""
    # Seconds an endpoint URL's host name may take to resolve when it is registered.
    dns_timeout: float = Field(default=5.0, gt=0, le=60)
    # Reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (comma-separated
    # IPs or CIDRs). Empty: none; the client address is the TCP peer's.
    trusted_proxies: str = ""

    # HTTP API
    max_payload_bytes: int = Field(default=256 * 1024, ge=1024)
    max_endpoints_per_tenant: int = Field(default=100, ge=1)
    # The request head (request line + headers): total bytes and number of headers (431
    # above), and seconds to receive the head and then the body (slow clients are cut off).
    max_request_head_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    max_request_headers: int = Field(default=100, ge=10, le=1000)
    request_head_timeout: float = Field(default=10.0, gt=0, le=300)
    request_body_timeout: float = Field(default=30.0, gt=0, le=600)
    # When set, GET /metrics requires "Authorization: Bearer <token>" (it names tenants).
    metrics_token: str | None = Field(default=None, min_length=16)
    # Metric label values: per-tenant series ("id") or one series for all tenants ("off");
    # at most this many tenants and event types get a series of their own, per process
    # (the rest count as "other"), so publishers cannot grow /metrics without bound.
    metrics_tenant_label: Literal["id", "off"] = "id"
    metrics_max_tenants: int = Field(default=1000, ge=1, le=100_000)
    metrics_max_event_types: int = Field(default=50, ge=1, le=10_000)

    # Delivery engine
    delivery_concurrency: int = Field(default=200, ge=1, le=10_000)
    # At most this many attempts in flight to one endpoint per process, so that a slow
    # endpoint holds a few slots, never the whole engine (head-of-line isolation).
    endpoint_concurrency: int = Field(default=100, ge=1, le=10_000)
    claim_batch_size: int = Field(default=100, ge=1, le=5_000)
    # A claim's lease: renewed every quarter of it while the attempt is out, so it need not
    # outlast the request timeout; a dead process's claims are due again within it.
    lease_seconds: float = Field(default=30.0, gt=0)
    poll_interval: float = Field(default=1.0, gt=0)
    connect_timeout: float = Field(default=5.0, gt=0)
    request_timeout: float = Field(default=10.0, gt=0)
    # Seconds a pooled connection to a receiver may sit idle and still be reused. Below the
    # idle timeout of common servers (uvicorn and Node close after 5 s): a connection the
    # receiver closes just as we reuse it fails the attempt ("Can not write request body",
    # "Server disconnected") and costs a retry delay.
    delivery_keepalive: float = Field(default=4.0, gt=0, le=300)
    response_body_limit: int = Field(default=4096, ge=0, le=1_048_576)
    retry_base_delay: float = Field(default=1.0, ge=0)
    retry_max_delay: float = Field(default=32.0, ge=0)
    max_attempts: int = Field(default=7, ge=1, le=50)
    # A receiver's Retry-After (429, 503) may push the next attempt back at most this far.
    max_retry_after: float = Field(default=3600.0, ge=0, le=604_800)
    # Circuit breaker per endpoint: opens after this many consecutive failures, for a
    # cool-down that starts at breaker_cooldown and doubles up to breaker_max_cooldown.
    breaker_threshold: int = Field(default=5, ge=1, le=1_000_000)
    breaker_cooldown: float = Field(default=30.0, gt=0, le=86_400)
    breaker_max_cooldown: float = Field(default=600.0, gt=0, le=604_800)
    # An endpoint failing without a single success for this long is disabled ("failing").
    auto_disable_after: float = Field(default=432_000.0, gt=0)
    run_workers: bool = True

    # Retention (docs/RECOVERY.md): events older than this many days are deleted with their
    # deliveries, attempts and dead-letter entries, unless a delivery is still live; a
    # tenant's retention_days overrides it. 0 keeps everything.
    retention_days: int = Field(default=30, ge=0, le=36_500)
    # How often a delivering process runs the purge (seconds), and the events deleted per
    # transaction.
    purge_interval: float = Field(default=3600.0, gt=0)
    purge_batch_size: int = Field(default=1000, ge=1, le=50_000)
    # The pause after each batch (seconds): a large purge takes its share of the database
    # in short bursts, so ingest and delivery keep their pace (docs/BENCHMARKS.md).
    purge_batch_pause: float = Field(default=0.25, ge=0, le=60)
    # Background jobs (recovery): rows handled per transaction, the pause between two
    # batches of a job (seconds), and how long a runner holds a job before another process
    # may take it up (a runner that died).
    job_batch_size: int = Field(default=500, ge=1, le=10_000)
    job_batch_pause: float = Field(default=0.0, ge=0, le=60)
    job_lease_seconds: float = Field(default=60.0, gt=0)
    # How often each process writes what it counted to metric_samples (the console's charts;
    # samples older than two days are deleted).
    metrics_sample_interval: float = Field(default=60.0, gt=0)

    # Distributed workers (Celery on RabbitMQ, used when broker_url is set)
    worker_concurrency: int = Field(default=2, ge=1, le=1000)
    worker_queue: str = "webhookd.deliveries"
    metrics_port: int = Field(default=9101, ge=0, le=65535)
    # Interface of a worker's metrics port (the compose file sets 0.0.0.0).
    metrics_host: str = "127.0.0.1"
    # A worker whose metrics port is taken takes the next free one (true) or stops (false).
    metrics_port_fallback: bool = False
    db_pool_size: int = Field(default=20, ge=1, le=500)

    log_level: str = "INFO"

    # Rate limiter (Redis buckets when redis_url is set): what a Redis failure does to a
    # publish ("open": let it through, "closed": 503), and the Redis socket timeout in seconds.
    rate_limit_failure_mode: Literal["open", "closed"] = "open"
    rate_limit_redis_timeout: float = Field(default=0.25, gt=0)
    # Prefix of the bucket keys: deployments that share one Redis database keep apart.
    rate_limit_redis_prefix: str = Field(default="webhookd:ratelimit:", max_length=100)

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        url = async_database_url(value)
        if not url.startswith(("sqlite+aiosqlite:", "postgresql+asyncpg:")):
            scheme = value.split(":", 1)[0] if ":" in value else value
            raise ValueError(
                f"unsupported database {scheme!r}: use sqlite:///path/to/file.db "
                "or postgresql://user:password@host:5432/database"
            )
        return url

    @field_validator("allowed_networks", "trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            ipaddress.ip_network(part, strict=False)  # ValueError names the bad entry
        return value

    @functools.cached_property
    def allowed_network_list(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        parts = (p.strip() for p in self.allowed_networks.split(","))
        return tuple(ipaddress.ip_network(p, strict=False) for p in parts if p)

    @property
    def trusted_proxy_list(self) -> list[str]:
        return [p.strip() for p in self.trusted_proxies.split(",") if p.strip()]

    @property
    def database_shown(self) -> str:
        """The database URL without its password (for banners and messages)."""
        return mask_password(self.database_url)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def sqlite_path(self) -> Path | None:
        """The database file of a SQLite URL (None for in-memory or other databases)."""
        if not self.is_sqlite or ":///" not in self.database_url:
            return None  # sqlite:// is an in-memory database
        path = self.database_url.split(":///", 1)[-1]
        if not path or path.startswith(":memory:"):
            return None
        return Path(path.split("?", 1)[0])
