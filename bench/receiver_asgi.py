"""A minimal fast receiver for benchmarks: raw ASGI under uvicorn, answers 200 to every POST
and the number of POSTs received so far to a GET.

    python bench/receiver_asgi.py PORT [DELAY_SECONDS]
"""

from __future__ import annotations

import asyncio
import sys

import uvicorn

DELAY = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
COUNT = 0


async def app(scope, receive, send):  # noqa: ANN001, ANN201
    global COUNT
    if scope["type"] != "http":
        return
    if scope["method"] == "GET":  # GET answers how many POSTs arrived so far
        body = str(COUNT).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    if DELAY:
        await asyncio.sleep(DELAY)
    COUNT += 1
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")],
        }
    )
    await send({"type": "http.response.body", "body": b"ok"})


if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        backlog=4096,
    )
