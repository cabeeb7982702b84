"""The drill receiver: raw ASGI under uvicorn, one JSON line per receipt, answers per plan.

    python bench/drills/receiver.py PORT RECEIPTS_FILE ['{"/slow": {"delay": 10}}']

Every POST appends ``{"id": webhook-id, "ev": event_id, "p": path, "a": attempt, "t":
arrival (time.time()), "s": status}`` to RECEIPTS_FILE once it has been answered. ``s`` is
0 when webhookd hung up before the answer (its timeout): that receipt is no delivery.
The file is appended to, so a restarted receiver continues the same record.

GET / answers how many POSTs were recorded; PUT /_plan replaces the plan (JSON body:
path -> {"delay": seconds, "status": code}; other paths answer 200 at once).
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import orjson
import uvicorn

PORT = int(sys.argv[1])
RECEIPTS = open(sys.argv[2], "a", buffering=1)  # noqa: SIM115 - open for the process' life
PLAN: dict[str, dict[str, Any]] = orjson.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
COUNT = 0


async def _body(receive: Any) -> bytes:
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


async def _answer(send: Any, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _hung_up(receive: Any, delay: float) -> bool:
    """Wait ``delay`` seconds; True if the client disconnected meanwhile."""
    waiting = asyncio.ensure_future(receive())
    done, _ = await asyncio.wait({waiting}, timeout=delay)
    if not done:
        waiting.cancel()
        return False
    return waiting.result()["type"] == "http.disconnect"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global COUNT, PLAN
    if scope["type"] != "http":
        return
    body = await _body(receive)
    if scope["method"] == "GET":
        await _answer(send, 200, str(COUNT).encode())
        return
    if scope["path"] == "/_plan":
        PLAN = orjson.loads(body)
        await _answer(send, 200, b"ok")
        return
    arrived = time.time()
    headers = dict(scope["headers"])
    plan = PLAN.get(scope["path"], {})
    status = int(plan.get("status", 200))
    if plan.get("delay") and await _hung_up(receive, float(plan["delay"])):
        status = 0
    else:
        await _answer(send, status, b"ok")
    try:
        event_id = orjson.loads(body).get("event_id")
    except orjson.JSONDecodeError:
        event_id = None
    COUNT += 1
    record = {
        "id": headers.get(b"webhook-id", b"").decode(),
        "ev": event_id,
        "p": scope["path"],
        "a": int(headers.get(b"x-webhook-attempt", b"0") or 0),
        "t": arrived,
        "s": status,
    }
    RECEIPTS.write(orjson.dumps(record).decode() + "\n")


if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=PORT,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        backlog=4096,
        timeout_graceful_shutdown=5,
    )
