"""The Redis token bucket: one atomic Lua script per check, shared by every API process.

Against the real Redis on 127.0.0.1:6379, database 15. Each test uses its own key prefix (or
deletes the one tenant key it uses before and after), never a FLUSHDB. The failure tests use
a closed loopback port (and a listener that never answers) instead of stopping Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client import REGISTRY

from tests.api_errors import assert_error
from tests.conftest import create_tenant
from tests.fixtures.server import ADMIN_KEY, LiveServer, free_port, make_settings, running_server
from tests.fixtures.services import REDIS_URL, require_service
from webhookd.config import Settings
from webhookd.errors import AppError
from webhookd.ratelimit import Decision, MemoryRateLimiter, create_rate_limiter, redis_buckets
from webhookd.ratelimit.redis_buckets import RedisRateLimiter

DEAD_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1 of loopback
DEFAULT_PREFIX = "webhookd:ratelimit:"
SERVER_PREFIX = f"webhookd-test-{uuid.uuid4().hex[:8]}:"  # the HTTP tests' server


def sync_redis() -> redis.Redis:
    return redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def delete_prefix(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(match=prefix + "*", count=500))
    if keys:
        client.delete(*keys)


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of this test's own in Redis db 15; its keys are deleted afterwards."""
    require_service("redis")
    value = f"test:webhookd:ratelimit:{uuid.uuid4().hex}:"
    yield value
    with sync_redis() as client:
        delete_prefix(client, value)


def acquire_all(url: str, key: str, limits: list[int], **kwargs) -> list[Decision]:
    """Acquire one after another (one event loop, one limiter, closed at the end)."""

    async def main() -> list[Decision]:
        limiter = RedisRateLimiter(url, **kwargs)
        try:
            return [await limiter.acquire(key, limit) for limit in limits]
        finally:
            await limiter.close()

    return asyncio.run(main())


def set_bucket(prefix: str, key: str, tokens: float, age: float) -> None:
    """Write a bucket's state as if it was last touched ``age`` seconds ago (server clock)."""
    with sync_redis() as client:
        seconds, micros = client.time()
        client.hset(
            prefix + key,
            mapping={"tokens": repr(tokens), "ts": f"{seconds + micros / 1e6 - age:.6f}"},
        )


def errors_total() -> float:
    return REGISTRY.get_sample_value("webhook_rate_limiter_errors_total") or 0.0


# --- bucket semantics, through RedisRateLimiter directly -------------------------------------


def test_a_new_bucket_starts_full_and_counts_down(prefix) -> None:
    decisions = acquire_all(REDIS_URL, "t", [5] * 7, prefix=prefix)
    assert [d.allowed for d in decisions] == [True] * 5 + [False, False]
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0, 0]
    assert all(d.limit == 5 for d in decisions)
    assert [d.retry_after for d in decisions[:5]] == [0.0] * 5
    # 5/min: a token every 12 s; the bucket was emptied a few milliseconds ago.
    assert 11.5 < decisions[5].retry_after <= 12.0
    assert decisions[0].headers == {"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "4"}
    assert decisions[5].headers == {
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "Retry-After": "12",
    }


def test_refill_is_limit_over_sixty_per_second(prefix) -> None:
    # 60/min = 1 token/s. An empty bucket last touched 1.5 s ago holds 1.5 tokens.
    set_bucket(prefix, "t", tokens=0.0, age=1.5)
    first, second = acquire_all(REDIS_URL, "t", [60, 60], prefix=prefix)
    assert first.allowed and first.remaining == 0  # 0.5 left
    assert not second.allowed
    assert 0.45 < second.retry_after <= 0.5
    assert second.headers["Retry-After"] == "1"

    # 120/min = 2 tokens/s: 1 s refills two tokens.
    set_bucket(prefix, "u", tokens=0.0, age=1.0)
    decisions = acquire_all(REDIS_URL, "u", [120] * 3, prefix=prefix)
    assert [d.allowed for d in decisions] == [True, True, False]
    assert 0.45 < decisions[2].retry_after <= 0.5


def test_refill_in_real_time(prefix) -> None:
    # 600/min = 10 tokens/s: drain, wait 0.35 s, and three or four tokens are back.
    async def main() -> tuple[int, Decision, int, float]:
        limiter = RedisRateLimiter(REDIS_URL, prefix=prefix)
        try:
            drained = 0
            for _ in range(700):
                decision = await limiter.acquire("t", 600)
                if not decision.allowed:
                    break
                drained += 1
            emptied = time.monotonic()
            await asyncio.sleep(0.35)
            refilled = 0
            for _ in range(50):
                if not (await limiter.acquire("t", 600)).allowed:
                    break
                refilled += 1
            return drained, decision, refilled, time.monotonic() - emptied
        finally:
            await limiter.close()

    drained, refused, refilled, waited = asyncio.run(main())
    assert 600 <= drained <= 620  # plus what refilled while draining
    assert not refused.allowed and refused.remaining == 0 and refused.retry_after <= 0.1
    # Under a token was left when it refused; then 10 tokens/s for ``waited`` seconds.
    assert 3 <= refilled <= 1 + waited * 10, (refilled, waited)


def test_capacity_caps_an_idle_bucket(prefix) -> None:
    set_bucket(prefix, "t", tokens=0.0, age=24 * 3600)
    decisions = acquire_all(REDIS_URL, "t", [3] * 4, prefix=prefix)
    assert [d.allowed for d in decisions] == [True, True, True, False]


def test_a_lower_limit_applies_to_an_existing_bucket(prefix) -> None:
    decisions = acquire_all(REDIS_URL, "t", [100, 2, 2, 2], prefix=prefix)
    assert [d.remaining for d in decisions] == [99, 1, 0, 0]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert 29 < decisions[-1].retry_after <= 30  # 2/min: 30 s per token


def test_buckets_are_per_key(prefix) -> None:
    decisions = acquire_all(REDIS_URL, "tenant:1", [2] * 3, prefix=prefix)
    assert [d.allowed for d in decisions] == [True, True, False]
    assert acquire_all(REDIS_URL, "tenant:2", [2], prefix=prefix)[0].remaining == 1


def test_the_bucket_is_a_hash_that_expires_once_it_would_be_full(prefix) -> None:
    acquire_all(REDIS_URL, "t", [5] * 5, prefix=prefix)  # emptied: 60 s to refill
    acquire_all(REDIS_URL, "u", [60], prefix=prefix)  # one token out: 1 s to refill
    with sync_redis() as client:
        state = client.hgetall(prefix + "t")
        assert set(state) == {b"tokens", b"ts"}
        assert float(state[b"tokens"]) < 0.01
        seconds, _ = client.time()
        assert abs(float(state[b"ts"]) - seconds) < 5  # the Redis server's clock
        assert 60_000 < client.pttl(prefix + "t") <= 66_000
        assert 1_000 < client.pttl(prefix + "u") <= 7_000


def test_default_key_names() -> None:
    require_service("redis")
    key = f"tenant:test-{uuid.uuid4().hex}"
    try:
        assert acquire_all(REDIS_URL, key, [3])[0].remaining == 2
        with sync_redis() as client:
            assert client.exists(DEFAULT_PREFIX + key) == 1
    finally:
        with sync_redis() as client:
            client.delete(DEFAULT_PREFIX + key)


def test_fifty_concurrent_acquires_on_a_bucket_of_ten(prefix) -> None:
    async def main() -> list[Decision]:
        # Two clients (two connection pools), like two API processes, racing for one bucket.
        # Closed and patient: under a loaded machine a slow Redis call must not count as
        # "let through" (fail-open), or the test would measure the failure mode instead.
        limiters = [
            RedisRateLimiter(REDIS_URL, prefix=prefix, timeout=2.0, failure_mode="closed")
            for _ in range(2)
        ]
        try:
            return await asyncio.gather(*(limiters[n % 2].acquire("t", 10) for n in range(50)))
        finally:
            for limiter in limiters:
                await limiter.close()

    started = time.monotonic()
    decisions = asyncio.run(main())
    assert time.monotonic() - started < 5  # 10/min: no token refills within this test
    assert sum(d.allowed for d in decisions) == 10
    assert sorted(d.remaining for d in decisions if d.allowed) == list(range(10))


def test_concurrent_checks_share_round_trips_and_stay_exact(prefix) -> None:
    async def main() -> tuple[list[Decision], int]:
        limiter = RedisRateLimiter(REDIS_URL, prefix=prefix, timeout=2.0, failure_mode="closed")
        calls = 0
        script = limiter._script

        async def counting(**kwargs):
            nonlocal calls
            calls += 1
            return await script(**kwargs)

        limiter._script = counting
        try:
            keys = ["a", "b"] * 30  # two tenants, interleaved, 30 checks each
            return await asyncio.gather(*(limiter.acquire(k, 20) for k in keys)), calls
        finally:
            await limiter.close()

    decisions, calls = asyncio.run(main())
    assert calls < 10  # 60 checks waiting together: a few round trips, not 60
    for tenant in (0, 1):  # answers in arrival order, per bucket, as if made one by one
        mine = decisions[tenant::2]
        assert [d.allowed for d in mine] == [True] * 20 + [False] * 10
        assert [d.remaining for d in mine[:20]] == list(range(19, -1, -1))


# --- Redis unavailable ------------------------------------------------------------------------


class RecordingLog:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def warning(self, event: str, **fields) -> None:
        self.calls.append((event, fields))


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> RecordingLog:
    log = RecordingLog()
    monkeypatch.setattr(redis_buckets, "log", log)
    return log


def test_fail_open_lets_the_request_through(recorded) -> None:
    before = errors_total()
    started = time.monotonic()
    url = "redis://:s3cret-passw0rd@127.0.0.1:1/0"
    decisions = acquire_all(url, "t", [5, 5, 5], failure_mode="open", timeout=0.25)
    assert time.monotonic() - started < 1.0
    assert all(d == Decision(True, 5, 4, 0.0) for d in decisions)
    assert decisions[0].headers == {"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "4"}
    assert errors_total() - before == 3
    # One warning for the burst (then at most one per 10 s), without the password.
    assert len(recorded.calls) == 1
    event, fields = recorded.calls[0]
    assert event == "ratelimit.redis_unavailable"
    assert fields["failure_mode"] == "open" and fields["error"] == "ConnectionError"
    assert "s3cret" not in repr(fields)


def test_fail_closed_refuses_with_a_503(recorded) -> None:
    before = errors_total()

    async def main() -> AppError:
        limiter = RedisRateLimiter(DEAD_REDIS_URL, failure_mode="closed", timeout=0.25)
        try:
            with pytest.raises(AppError) as caught:
                await limiter.acquire("t", 5)
            return caught.value
        finally:
            await limiter.close()

    started = time.monotonic()
    error = asyncio.run(main())
    assert time.monotonic() - started < 1.0
    assert error.status_code == 503
    assert error.code == "rate_limiter_unavailable"
    assert error.message == "rate limiter unavailable; try again shortly"
    assert error.headers == {"Retry-After": "1"}
    assert errors_total() - before == 1
    assert [event for event, _ in recorded.calls] == ["ratelimit.redis_unavailable"]


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A loopback port that accepts connections (in the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_a_redis_that_never_answers_costs_about_the_timeout(mode, recorded) -> None:
    with silent_listener() as port:
        started = time.monotonic()
        try:
            decisions = acquire_all(
                f"redis://127.0.0.1:{port}/0", "t", [5], failure_mode=mode, timeout=0.2
            )
        except AppError as error:
            assert mode == "closed" and error.status_code == 503
        else:
            assert mode == "open" and decisions[0].allowed
        elapsed = time.monotonic() - started
    assert 0.15 < elapsed < 1.0
    assert recorded.calls[0][1]["error"] == "TimeoutError"


def test_invalid_failure_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="failure_mode"):
        RedisRateLimiter(DEAD_REDIS_URL, failure_mode="sideways")  # type: ignore[arg-type]


# --- settings and the factory -----------------------------------------------------------------


def test_settings_defaults_and_validation() -> None:
    settings = Settings(redis_url=None)
    assert settings.rate_limit_failure_mode == "open"
    assert settings.rate_limit_redis_timeout == 0.25
    with pytest.raises(ValueError):
        Settings(rate_limit_failure_mode="sideways")
    with pytest.raises(ValueError):
        Settings(rate_limit_redis_timeout=0)


def test_create_rate_limiter_picks_redis_when_a_url_is_set() -> None:
    assert isinstance(create_rate_limiter(Settings(redis_url=None)), MemoryRateLimiter)
    settings = Settings(
        redis_url=DEAD_REDIS_URL, rate_limit_failure_mode="closed", rate_limit_redis_timeout=0.5
    )
    limiter = create_rate_limiter(settings)
    assert isinstance(limiter, RedisRateLimiter)
    assert (limiter.failure_mode, limiter.timeout) == ("closed", 0.5)
    asyncio.run(limiter.close())


# --- through the HTTP API (a LiveServer in this process) ---------------------------------------


@contextlib.contextmanager
def fresh_tenant_key(tenant_id: int) -> Iterator[str]:
    """The Redis key of a tenant's bucket, deleted before and after (fresh test databases all
    number their tenants from 1, so an earlier run may have left this key behind)."""
    key = f"{SERVER_PREFIX}tenant:{tenant_id}"
    with sync_redis() as client:
        client.delete(key)
        try:
            yield key
        finally:
            client.delete(key)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory) -> Iterator[LiveServer]:
    require_service("redis")
    # A patient timeout: on a loaded CI machine a slow call would fail open and skew counts.
    settings = {
        "redis_url": REDIS_URL,
        "rate_limit_redis_timeout": 2.0,
        "rate_limit_redis_prefix": SERVER_PREFIX,  # apart from any other run on this Redis
    }
    with running_server(tmp_path_factory, "redis", **settings) as srv:
        yield srv


def test_http_publish_is_limited_through_redis(redis_server) -> None:
    with redis_server.client(**{"X-Admin-Key": ADMIN_KEY}) as admin:
        tenant = create_tenant(redis_server, admin, rate_limit=5)
    with tenant.client, fresh_tenant_key(tenant.id) as key:
        for n in range(5):
            response = tenant.publish(event_id=f"evt_redis_{n}")
            assert response.status_code == 202, response.text
            assert response.headers["X-RateLimit-Limit"] == "5"
            assert response.headers["X-RateLimit-Remaining"] == str(4 - n)
            assert "Retry-After" not in response.headers
        refused = tenant.publish(event_id="evt_redis_refused")
        error = assert_error(refused, 429, "rate_limited")
        assert "5" in error["message"]
        assert refused.headers["X-RateLimit-Remaining"] == "0"
        assert 10 <= int(refused.headers["Retry-After"]) <= 12
        with sync_redis() as client:  # the bucket lives in Redis, not in the process
            assert client.exists(key) == 1
            assert float(client.hget(key, "tokens")) < 1


@pytest.mark.parametrize(
    ("mode", "status"), [("open", 202), ("closed", 503)], ids=["fail-open", "fail-closed"]
)
def test_http_publish_with_redis_down(tmp_path, mode, status) -> None:
    settings = make_settings(
        tmp_path / "webhookd.db",
        redis_url=DEAD_REDIS_URL,
        rate_limit_failure_mode=mode,
        rate_limit_redis_timeout=0.25,
    )
    server = LiveServer(settings).start()
    try:
        with server.client(**{"X-Admin-Key": ADMIN_KEY}) as admin:
            tenant = create_tenant(server, admin, rate_limit=5)
        with tenant.client:
            started = time.monotonic()
            responses = [tenant.publish(event_id=f"evt_down_{n}") for n in range(3)]
            assert time.monotonic() - started < 3.0
    finally:
        server.stop()
    assert [r.status_code for r in responses] == [status] * 3, responses[0].text
    if mode == "open":
        assert responses[0].headers["X-RateLimit-Limit"] == "5"
        assert responses[0].headers["X-RateLimit-Remaining"] == "4"
    else:
        error = assert_error(responses[0], 503, "rate_limiter_unavailable")
        assert error["message"] == "rate limiter unavailable; try again shortly"
        assert responses[0].headers["Retry-After"] == "1"


# --- two real API processes on one bucket ------------------------------------------------------


class ApiProcess:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "webhookd", "serve", "--port", str(self.port), "--no-migrate"],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/health", timeout=0.5).status_code == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"webhookd on {self.port} did not start:\n{self.output()}")

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()


@pytest.fixture(scope="module")
def api_pairs(tmp_path_factory) -> Iterator[dict[str, list[ApiProcess]]]:
    """Four webhookd processes on one migrated SQLite file, started together: a pair with
    WEBHOOKD_REDIS_URL (one shared bucket) and a pair without (a bucket in each process)."""
    require_service("redis")
    tmp = Path(tmp_path_factory.mktemp("processes"))
    env = {k: v for k, v in os.environ.items() if "REDIS_URL" not in k}
    env.update(
        WEBHOOKD_DATABASE_URL=f"sqlite:///{tmp / 'shared.db'}",
        WEBHOOKD_ADMIN_KEY=ADMIN_KEY,
        WEBHOOKD_RUN_WORKERS="false",
        WEBHOOKD_LOG_LEVEL="WARNING",
        WEBHOOKD_RATE_LIMIT_REDIS_TIMEOUT="2",  # a loaded machine must not fail open here
        WEBHOOKD_RATE_LIMIT_FAILURE_MODE="closed",
    )
    subprocess.run(
        [sys.executable, "-m", "webhookd", "migrate"],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    pairs: dict[str, list[ApiProcess]] = {"redis": [], "memory": []}
    try:
        for n in range(2):
            pairs["redis"].append(
                ApiProcess(
                    {
                        **env,
                        "WEBHOOKD_REDIS_URL": REDIS_URL,
                        "WEBHOOKD_RATE_LIMIT_REDIS_PREFIX": SERVER_PREFIX,
                    },
                    tmp / f"redis{n}.log",
                )
            )
            pairs["memory"].append(ApiProcess(env, tmp / f"memory{n}.log"))
        deadline = time.monotonic() + 30
        for process in pairs["redis"] + pairs["memory"]:
            process.wait_ready(deadline)
        yield pairs
    finally:
        for process in pairs["redis"] + pairs["memory"]:
            process.stop()


def publish_alternating(
    processes: list[ApiProcess], count: int, *, name: str, redis_bucket: bool
) -> tuple[list[int], float]:
    """Create a tenant (rate_limit=20) on the first process, then publish ``count`` events,
    round-robin over the processes, 8 at a time. Returns the statuses and the elapsed time."""
    with httpx.Client(base_url=processes[0].url, timeout=10) as admin:
        response = admin.post(
            "/api/v1/tenants",
            headers={"X-Admin-Key": ADMIN_KEY},
            json={"name": name, "email": "ops@example.com", "rate_limit": 20},
        )
    assert response.status_code == 201, response.text
    tenant = response.json()
    clients = [
        httpx.Client(base_url=p.url, headers={"X-API-Key": tenant["api_key"]}, timeout=10)
        for p in processes
    ]

    def publish(n: int) -> int:
        response = clients[n % len(clients)].post(
            "/api/v1/events",
            json={"event_id": f"evt_{n}", "event_type": "user.created", "payload": {"n": n}},
        )
        return response.status_code

    try:
        fresh = fresh_tenant_key(tenant["id"]) if redis_bucket else contextlib.nullcontext()
        with fresh, ThreadPoolExecutor(max_workers=8) as pool:
            for client in clients:  # connections open before the clock starts
                client.get("/health")
            started = time.monotonic()
            statuses = list(pool.map(publish, range(count)))
            elapsed = time.monotonic() - started
    finally:
        for client in clients:
            client.close()
    return statuses, elapsed


@pytest.mark.slow
def test_two_api_processes_share_one_bucket(api_pairs) -> None:
    statuses, elapsed = publish_alternating(
        api_pairs["redis"], 60, name="shared bucket", redis_bucket=True
    )
    assert set(statuses) <= {202, 429}, statuses
    accepted = statuses.count(202)
    # The bucket holds 20 and refills 20/60 tokens a second while the run lasts.
    allowance = 20 + elapsed * 20 / 60
    assert 20 <= accepted <= allowance + 1e-9, (accepted, elapsed)
    # Both processes accepted and both refused: one bucket, not one each.
    assert {statuses[n] for n in range(0, 60, 2)} == {202, 429}
    assert {statuses[n] for n in range(1, 60, 2)} == {202, 429}


@pytest.mark.slow
def test_control_without_redis_each_process_has_its_own_bucket(api_pairs) -> None:
    statuses, elapsed = publish_alternating(
        api_pairs["memory"], 60, name="bucket each", redis_bucket=False
    )
    assert set(statuses) <= {202, 429}, statuses
    # Two in-memory buckets of 20: twice the limit gets through.
    assert 40 <= statuses.count(202) <= 40 + 2 * elapsed * 20 / 60, (statuses, elapsed)
