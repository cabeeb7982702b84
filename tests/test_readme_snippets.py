"""The README's receiver snippets work as printed, on the raw bytes of a real signed body."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import httpx

from webhookd.delivery.signing import generate_secret, signature_headers

README = Path(__file__).resolve().parents[1] / "README.md"
BODY = b'{"event_id":"evt_1","event_type":"user.created","payload":{"\xc3\xa9":1}}'


def _section_blocks(heading: str) -> list[str]:
    text = README.read_text()
    section = text.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def _block_defining(name: str) -> str:
    return next(
        b for b in _section_blocks("Verifying signatures on the receiving side") if name in b
    )


def _signed(secret: str) -> dict[str, str]:
    return signature_headers(secret=secret, msg_id="dlv_1", timestamp=int(time.time()), body=BODY)


def test_the_hex_signature_snippet_checks_raw_bytes() -> None:
    namespace: dict[str, Any] = {}
    exec(_block_defining("def verify_signature"), namespace)  # noqa: S102
    secret = generate_secret()
    signature = _signed(secret)["X-Webhook-Signature"]
    assert namespace["verify_signature"](BODY, signature, secret) is True
    assert namespace["verify_signature"](BODY + b" ", signature, secret) is False


def test_the_fastapi_receiver_accepts_a_signed_delivery_and_refuses_a_forged_one() -> None:
    secret = generate_secret()
    code = _block_defining("FastAPI()").replace('"whsec_..."', repr(secret))
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # noqa: S102

    async def post(body: bytes, headers: dict[str, str]) -> int:
        transport = httpx.ASGITransport(app=namespace["app"])
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
            return (await client.post("/webhooks", content=body, headers=headers)).status_code

    headers = _signed(secret)
    assert asyncio.run(post(BODY, headers)) == 200
    assert asyncio.run(post(BODY.replace(b"1}", b"2}"), headers)) == 400
    hex_only = {"X-Webhook-Signature": headers["X-Webhook-Signature"]}
    assert asyncio.run(post(BODY, hex_only)) == 400  # no timestamp: refused by default
