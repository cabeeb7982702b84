"""`webhookd listen` (alias `receiver`): the receiver developers run on their own machine.

Each test starts the command as a real process on a free 127.0.0.1 port and talks HTTP to
it; the pure helpers get table tests."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import orjson
import pytest

from webhookd.delivery.signing import generate_secret, signature_headers
from webhookd.receiver import (
    answer_status,
    check_signatures,
    format_body,
    forward_headers,
    use_color,
)

BODY = b'{"event_id":"evt_1","event_type":"user.created","payload":{"n":1},"created_at":"x"}'
ANSI = "\x1b["
STARTUP = 20.0  # seconds a listener may take to accept connections


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    """Until the port accepts a TCP connection: no HTTP request, so nothing is counted."""
    deadline = time.monotonic() + STARTUP
    while True:
        assert proc.poll() is None, f"{what} exited with {proc.returncode}"
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        assert time.monotonic() < deadline, f"{what} did not start"
        time.sleep(0.05)


def delivery(secret: str, msg_id: str = "dlv_1", attempt: int = 1) -> dict[str, str]:
    """The headers webhookd sends with BODY."""
    return {
        **signature_headers(secret=secret, msg_id=msg_id, timestamp=int(time.time()), body=BODY),
        "Content-Type": "application/json",
        "X-Webhook-Event-Type": "user.created",
        "X-Webhook-Attempt": str(attempt),
    }


@dataclass
class Listener:
    port: int
    log: Path
    client: httpx.Client

    def url(self, path: str = "/webhooks") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def post(self, headers: dict[str, str] | None = None, body: bytes = BODY) -> httpx.Response:
        return self.client.post(self.url(), content=body, headers=headers or {})

    def output(self) -> str:
        return self.log.read_text()


@contextlib.contextmanager
def listening(
    tmp_path: Path, *args: str, command: str = "listen", env: dict[str, str] | None = None
) -> Iterator[Listener]:
    port = free_port()
    log = tmp_path / f"{command}-{port}.log"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("WEBHOOKD_")}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "webhookd", command, "--port", str(port), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**environ, **(env or {})},
        )
    try:
        wait_for_port(port, proc, f"webhookd {command}: {log.read_text()}")
        with httpx.Client(timeout=15, trust_env=False) as client:
            yield Listener(port, log, client)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_prints_each_delivery_and_its_signature_verdict(tmp_path: Path) -> None:
    secret = generate_secret()
    with listening(tmp_path, "--secret", secret) as listener:
        assert listener.post(delivery(secret, "dlv_good", attempt=2)).status_code == 200
        forged = delivery(generate_secret(), "dlv_forged")
        assert listener.post(forged).status_code == 200
        assert listener.post({"X-Tenant": "acme"}, body=b"not json").status_code == 200
    output = listener.output()
    assert "--> POST /webhooks  event_type=user.created  webhook-id=dlv_good  attempt=2" in output
    assert "signature valid: standard-webhooks OK, X-Webhook-Signature OK" in output
    assert "webhook-id=dlv_forged" in output
    assert (
        "signature INVALID: standard-webhooks FAILED (no webhook-signature matches), "
        "X-Webhook-Signature FAILED (X-Webhook-Signature does not match)" in output
    )
    assert "X-Webhook-Signature absent" in output  # the unsigned request
    assert "headers: X-Tenant: acme" in output
    assert '  "event_id": "evt_1",\n  "event_type": "user.created",' in output  # pretty JSON
    assert "\nnot json\n" in output
    assert output.count("<-- 200") == 3
    assert ANSI not in output  # stdout is a file, not a terminal


def test_without_a_secret_signatures_are_not_checked(tmp_path: Path) -> None:
    with listening(tmp_path) as listener:
        assert listener.post(delivery(generate_secret())).status_code == 200
    assert "signature not checked (no --secret)" in listener.output()


def test_status_answers_every_request(tmp_path: Path) -> None:
    with listening(tmp_path, "--status", "503") as listener:
        answers = [listener.post(delivery(generate_secret())) for _ in range(2)]
    assert [a.status_code for a in answers] == [503, 503]
    assert listener.output().count("<-- 503") == 2


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--fail-every", "3"), [200, 200, 503, 200, 200, 503]),
        (("--fail-every", "2", "--status", "500"), [200, 500, 200, 500, 200, 500]),
        (("--fail-every", "3", "--status", "202"), [202, 202, 503, 202, 202, 503]),
    ],
)
def test_fail_every_fails_every_nth_request(
    tmp_path: Path, args: tuple[str, ...], expected: list[int]
) -> None:
    with listening(tmp_path, *args) as listener:
        statuses = [listener.post(delivery(generate_secret())).status_code for _ in expected]
    assert statuses == expected
    output = listener.output()
    assert output.count("simulated failure") == len(expected) // int(args[1])
    assert "#6 " in output


def test_delay_answers_late(tmp_path: Path) -> None:
    with listening(tmp_path, "--delay", "0.6") as listener:
        started = time.monotonic()
        assert listener.post().status_code == 200
        assert time.monotonic() - started >= 0.6
    assert "after a 0.6s delay" in listener.output()


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@contextlib.contextmanager
def forward_target(status: int) -> Iterator[tuple[str, list[Received]]]:
    """A plain http.server application that records what reaches it."""
    received: list[Received] = []

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.append(Received(self.command, self.path, dict(self.headers), body))
            answer = b'{"handled":true}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Retry-After", "7")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        do_POST = do_PUT = _record  # noqa: N815 - http.server's names

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook?from=listen", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_forward_to_relays_the_delivery_and_the_answer(tmp_path: Path) -> None:
    secret = generate_secret()
    with (
        forward_target(status=202) as (url, received),
        listening(tmp_path, "--secret", secret, "--forward-to", url) as listener,
    ):
        sent = {**delivery(secret, "dlv_fwd", attempt=3), "X-Tenant": "acme"}
        answer = listener.post(sent)
        put = listener.client.put(listener.url("/other"), content=b"raw", headers=sent)
    assert answer.status_code == 202
    assert answer.json() == {"handled": True}
    assert answer.headers["Retry-After"] == "7"
    assert put.status_code == 202
    first, second = received
    assert (first.method, first.path, first.body) == ("POST", "/hook?from=listen", BODY)
    assert (second.method, second.body) == ("PUT", b"raw")
    for name in (
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "X-Webhook-Signature",
        "X-Webhook-Event-Type",
        "X-Webhook-Attempt",
        "Content-Type",
        "X-Tenant",
    ):
        assert first.headers[name] == sent[name], name
    assert f"<-- 202  from {url}" in listener.output()


def test_forward_to_a_target_that_is_down_answers_502(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    with listening(tmp_path, "--forward-to", url) as listener:
        answer = listener.post()
    assert answer.status_code == 502
    assert answer.json()["error"] == "forward_failed"
    assert url in answer.json()["detail"]
    assert f"<-- 502  forward to {url} failed: " in listener.output()


def test_simulated_failures_are_not_forwarded(tmp_path: Path) -> None:
    with (
        forward_target(status=200) as (url, received),
        listening(tmp_path, "--forward-to", url, "--fail-every", "2") as listener,
    ):
        statuses = [listener.post().status_code for _ in range(4)]
    assert statuses == [200, 503, 200, 503]
    assert len(received) == 2


@pytest.mark.parametrize("variable", ["WEBHOOKD_RECEIVER_SECRET", "WEBHOOKD_LISTEN_SECRET"])
def test_receiver_is_an_alias_and_the_secret_comes_from_the_environment(
    tmp_path: Path, variable: str
) -> None:
    secret = generate_secret()
    with listening(
        tmp_path, "--status", "202", command="receiver", env={variable: secret}
    ) as listener:
        assert listener.post(delivery(secret)).status_code == 202
    assert "signature valid: standard-webhooks OK, X-Webhook-Signature OK" in listener.output()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fail-every", "0"], "--fail-every"),
        (["--delay", "-1"], "--delay"),
        (["--delay", "soon"], "--delay"),
        (["--status", "99"], "--status"),
        (["--status", "600"], "--status"),
        (["--forward-to", "ftp://127.0.0.1/hook"], "http:// or https://"),
        (["--forward-to", "127.0.0.1:8000/hook"], "http:// or https://"),
        (["--forward-to", "http://127.0.0.1:port/hook"], "not a valid URL"),
        (["--port", "0"], "--port"),
    ],
)
def test_bad_option_values_exit_with_a_message(args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "webhookd", "listen", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Invalid value" in result.stderr
    assert message in result.stderr
    assert "listen on" not in result.stdout


def test_color_forced_into_a_file_and_no_color(tmp_path: Path) -> None:
    with listening(tmp_path, "--color") as listener:  # forced on: codes even in a file
        listener.post()
    assert f"{ANSI}32m<-- 200" in listener.output()
    with listening(tmp_path, env={"NO_COLOR": "1"}) as listener:
        listener.post()
    assert ANSI not in listener.output()


def _run_on_a_terminal(args: list[str], env: dict[str, str]) -> str:
    """The listener's output when its stdout is a pseudo-terminal, after one request."""
    port = free_port()
    primary, secondary = pty.openpty()
    environ = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "webhookd", "listen", "--port", str(port), *args],
        stdout=secondary,
        stderr=secondary,
        env={**environ, "TERM": "xterm", **env},
    )
    os.close(secondary)
    chunks: list[bytes] = []
    try:
        wait_for_port(port, proc, "webhookd listen on a terminal")
        assert httpx.post(f"http://127.0.0.1:{port}/", content=BODY, trust_env=False).is_success
        deadline = time.monotonic() + 10
        while b"<-- 200" not in b"".join(chunks) and time.monotonic() < deadline:
            if select.select([primary], [], [], 0.2)[0]:
                chunks.append(os.read(primary, 65536))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        os.close(primary)
    output = b"".join(chunks).decode()
    assert "<-- 200" in output
    return output


@pytest.mark.parametrize(
    ("args", "env", "coloured"),
    [
        ([], {}, True),
        ([], {"NO_COLOR": "1"}, False),
        (["--no-color"], {}, False),
        ([], {"TERM": "dumb"}, False),
    ],
)
def test_colour_on_a_terminal(args: list[str], env: dict[str, str], coloured: bool) -> None:
    assert (ANSI in _run_on_a_terminal(args, env)) is coloured


def test_the_receiver_module_stays_light() -> None:
    code = (
        "import sys, webhookd.receiver;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'sqlalchemy', 'fastapi', 'pydantic', 'uvicorn', 'celery', 'starlette'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert result.stdout.strip() == "[]"


# ---- pure helpers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "status", "fail_every", "expected"),
    [
        (1, 200, None, (200, False)),
        (7, 204, None, (204, False)),
        (1, 503, None, (503, True)),
        (1, 302, None, (302, True)),
        (1, 200, 3, (200, False)),
        (2, 200, 3, (200, False)),
        (3, 200, 3, (503, True)),
        (6, 200, 3, (503, True)),
        (7, 200, 3, (200, False)),
        (1, 201, 1, (503, True)),
        (1, 500, 2, (200, False)),
        (2, 500, 2, (500, True)),
        (4, 429, 2, (429, True)),
        (5, 202, 5, (503, True)),
    ],
)
def test_answer_status(
    count: int, status: int, fail_every: int | None, expected: tuple[int, bool]
) -> None:
    assert answer_status(count, status, fail_every) == expected


@pytest.mark.parametrize(
    ("flag", "isatty", "environ", "expected"),
    [
        (None, True, {}, True),
        (None, False, {}, False),
        (None, True, {"NO_COLOR": "1"}, False),
        (None, True, {"NO_COLOR": ""}, True),  # no-color.org: set and non-empty
        (None, True, {"TERM": "dumb"}, False),
        (None, True, {"TERM": "xterm-256color"}, True),
        (True, False, {"NO_COLOR": "1"}, True),  # an explicit --color wins
        (False, True, {}, False),
    ],
)
def test_use_color(
    flag: bool | None, isatty: bool, environ: dict[str, str], expected: bool
) -> None:
    assert use_color(flag, isatty, environ) is expected


def test_check_signatures() -> None:
    secret = generate_secret()
    good = signature_headers(secret=secret, msg_id="m", timestamp=int(time.time()), body=BODY)
    assert check_signatures(BODY, good, None).checked is False
    result = check_signatures(BODY, good, secret)
    assert (result.valid, result.detail) == (
        True,
        "standard-webhooks OK, X-Webhook-Signature OK",
    )
    standard_only = {k: v for k, v in good.items() if k != "X-Webhook-Signature"}
    assert check_signatures(BODY, standard_only, secret).valid is True
    assert "X-Webhook-Signature absent" in check_signatures(BODY, standard_only, secret).detail
    x_only = {"X-Webhook-Signature": good["X-Webhook-Signature"]}
    assert check_signatures(BODY, x_only, secret).valid is False  # as verify() by default
    wrong_x = {**good, "X-Webhook-Signature": "sha256=00"}
    assert check_signatures(BODY, wrong_x, secret).valid is False
    assert check_signatures(BODY + b" ", good, secret).valid is False
    old = signature_headers(secret=secret, msg_id="m", timestamp=int(time.time()) - 3600, body=BODY)
    assert "more than 300s" in check_signatures(BODY, old, secret).detail


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", "(empty body)"),
        (b'{"a":[1]}', '{\n  "a": [\n    1\n  ]\n}'),
        (b"plain", "plain"),
        (b"\xff", "\ufffd"),
        (b"x" * 2001, "x" * 2000 + "\n… (2001 bytes in all)"),
    ],
)
def test_format_body(body: bytes, expected: str) -> None:
    assert format_body(body) == expected


def test_forward_headers_drop_only_per_connection_headers() -> None:
    headers = {
        "Host": "127.0.0.1:9000",
        "Content-Length": "3",
        "Connection": "keep-alive",
        "Accept-Encoding": "gzip",
        "Content-Type": "application/json",
        "webhook-id": "m",
        "X-Webhook-Attempt": "2",
        "Authorization": "Bearer t",
    }
    assert forward_headers(headers) == {
        "Content-Type": "application/json",
        "webhook-id": "m",
        "X-Webhook-Attempt": "2",
        "Authorization": "Bearer t",
    }


def test_format_body_pretty_prints_what_orjson_reads() -> None:
    assert orjson.loads(format_body(BODY)) == orjson.loads(BODY)
