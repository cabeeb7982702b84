"""webhookd as the benchmark runs it: ``webhookd serve`` / ``webhookd worker`` child processes
configured through the environment, and a tenant set up through the public API."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from cryptography.fernet import Fernet

from bench.procs import LOCALHOST, Procs, free_port

ADMIN_KEY = "whadm_bench_admin_key"
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379/14"  # DEVELOPERS.md: database 14 is for benchmarks
BROKER = "amqp://guest:guest@127.0.0.1:5672"


def base_env(database_url: str, **settings: Any) -> dict[str, str]:
    """The environment of every webhookd process of one scenario (shared secrets)."""
    env = {
        "WEBHOOKD_DATABASE_URL": database_url,
        "WEBHOOKD_ADMIN_KEY": ADMIN_KEY,
        "WEBHOOKD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "WEBHOOKD_API_KEY_PEPPER": "bench-pepper",
        "WEBHOOKD_ALLOW_PRIVATE_TARGETS": "true",
        "WEBHOOKD_LOG_LEVEL": "WARNING",
        "WEBHOOKD_METRICS_PORT": "0",
    }
    env.update({f"WEBHOOKD_{k.upper()}": str(v) for k, v in settings.items()})
    return env


@dataclass
class Server:
    proc: Any
    url: str

    @property
    def pid(self) -> int:
        return int(self.proc.pid)


def start_serve(procs: Procs, env: dict[str, str], *, workers: bool) -> Server:
    port = free_port()
    proc = procs.python(
        "serve",
        ["-m", "webhookd", "serve", "--host", LOCALHOST, "--port", str(port)],
        {**env, "WEBHOOKD_RUN_WORKERS": "true" if workers else "false"},
    )
    url = f"http://{LOCALHOST}:{port}"
    procs.wait_http(proc, f"{url}/ready", timeout=90)
    return Server(proc, url)


def start_worker(procs: Procs, env: dict[str, str]) -> Any:
    return procs.python("worker", ["-m", "webhookd", "worker"], env)


@dataclass(frozen=True)
class Tenant:
    id: str
    api_key: str
    secret: str


def create_tenant(server_url: str, endpoint_urls: list[str]) -> Tenant:
    """A tenant with no practical rate limit, its endpoints, and its signing secret, all
    through the public API (the secret as a receiver would get it: ``GET …/secret``)."""
    with httpx.Client(base_url=f"{server_url}/api/v1", timeout=30) as api:
        created = api.post(
            "/tenants",
            headers={"X-Admin-Key": ADMIN_KEY},
            json={"name": "bench", "email": "bench@example.com", "rate_limit": 1_000_000},
        )
        created.raise_for_status()
        tenant = created.json()
        auth = {"X-API-Key": tenant["api_key"]}
        for url in endpoint_urls:
            api.post(
                f"/tenants/{tenant['id']}/endpoints", headers=auth, json={"url": url}
            ).raise_for_status()
        secret = api.get(f"/tenants/{tenant['id']}/secret", headers=auth)
        secret.raise_for_status()
    return Tenant(str(tenant["id"]), str(tenant["api_key"]), str(secret.json()["secret_key"]))


def declare_event_type(server_url: str, tenant: Tenant, name: str, schema: dict[str, Any]) -> None:
    """Put ``name`` in the tenant's event-type catalog with this JSON Schema, and check
    that a payload breaking it is refused (so the schema really is checked on publish)."""
    with httpx.Client(base_url=f"{server_url}/api/v1", timeout=30) as api:
        auth = {"X-API-Key": tenant.api_key}
        api.post(
            f"/tenants/{tenant.id}/event-types",
            headers=auth,
            json={"name": name, "schema": schema},
        ).raise_for_status()
        bad = {"event_id": "schema-check", "event_type": name, "payload": {"n": "x"}}
        refused = api.post("/events", headers=auth, json=bad)
        if refused.status_code != 422:
            raise RuntimeError(f"a payload against the schema was not refused: {refused.text}")


def sqlite_scalar(db: Path, sql: str) -> int:
    conn = sqlite3.connect(db, timeout=30)
    try:
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


async def _pg(dsn: str, sql: str, script: bool) -> Any:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return await (conn.execute(sql) if script else conn.fetchval(sql))
    finally:
        await conn.close()


def pg(dsn: str, sql: str, *, script: bool = False) -> Any:
    """The first value of a query, or (``script``) run several statements."""
    return asyncio.run(_pg(dsn, sql, script))


PENDING_SQL = "SELECT count(*) FROM deliveries WHERE status = 'pending'"
