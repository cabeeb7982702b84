"""The naive peer (c): the brief's design as a team would first write it. One Celery task per
delivery on RabbitMQ; the task signs the body (Standard Webhooks) and POSTs it with a
blocking ``httpx.Client``; the worker runs Celery's default prefork pool with one child per
core. The harness enqueues the backlog, then starts the worker:

    BENCH_NAIVE_BROKER=amqp://… BENCH_NAIVE_QUEUE=q celery -A bench.naive_celery worker \\
        -Q q --concurrency 2
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time

import httpx
from celery import Celery

QUEUE = os.environ.get("BENCH_NAIVE_QUEUE", "bench.naive")
app = Celery("bench_naive", broker=os.environ.get("BENCH_NAIVE_BROKER", "memory://"))
app.conf.update(task_default_queue=QUEUE, task_ignore_result=True)

_client: httpx.Client | None = None


def client() -> httpx.Client:  # one keep-alive client per worker child
    global _client
    if _client is None:
        _client = httpx.Client(timeout=10)
    return _client


@app.task(name="bench.naive.deliver")
def deliver(url: str, body: str, secret: str, msg_id: str) -> int:
    timestamp = str(int(time.time()))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.{body}".encode()
    signature = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    headers = {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": f"v1,{signature}",
    }
    response = client().post(url, content=body.encode(), headers=headers)
    response.raise_for_status()
    return response.status_code


def enqueue(count: int, url: str, secret: str, prefix: str) -> None:
    """Publish ``count`` delivery tasks on one producer connection."""
    from bench.loadgen import event_body

    with app.producer_or_acquire() as producer:
        for n in range(count):
            body = event_body(f"{prefix}-{n}", n).decode()
            deliver.apply_async((url, body, secret, f"{prefix}_{n}"), producer=producer)


def purge() -> int:
    with app.connection_for_write() as conn:
        return int(conn.default_channel.queue_purge(QUEUE) or 0)
