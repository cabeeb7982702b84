"""Child processes of the harness: started in their own process group, always killed, sampled.

Every process the harness starts goes through :class:`Procs`, a context manager whose exit
kills every process group it started (SIGTERM, then SIGKILL after a grace period), so a
failed or interrupted scenario never leaves a server, worker or receiver behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import uvicorn

LOCALHOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent


def serve_local(app: object, port: int, **settings: object) -> None:
    """Serve an ASGI app on 127.0.0.1 the way ``webhookd serve`` is served (uvicorn, uvloop,
    httptools, no access log); ``settings`` add to or override uvicorn's."""
    options: dict[str, object] = {
        "loop": "uvloop",
        "http": "httptools",
        "access_log": False,
        "log_level": "warning",
    }
    uvicorn.run(app, host=LOCALHOST, port=port, **{**options, **settings})  # type: ignore[arg-type]


class BenchError(RuntimeError):
    """A scenario that cannot produce an honest figure: it stops the run with this message."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.02
) -> None:
    """Poll ``check`` until it is true; BenchError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


class Procs:
    """The processes of one scenario; ``with Procs() as procs:`` kills them all on exit."""

    def __init__(self) -> None:
        self.running: list[subprocess.Popen[bytes]] = []
        self.logs = Path(tempfile.mkdtemp(prefix="webhookd-bench-logs-"))

    def __enter__(self) -> Procs:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.stop_all()
        if exc_type is None:  # a failed scenario keeps its logs for a look
            shutil.rmtree(self.logs, ignore_errors=True)

    def start(
        self, name: str, args: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = self.logs / f"{name}-{len(self.running)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                args,
                env={**os.environ, **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: killed with its children
                cwd=ROOT,  # python -m bench.… resolves from the repository root
            )
        proc.log_path = log  # type: ignore[attr-defined]
        self.running.append(proc)
        return proc

    def python(
        self, name: str, args: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        return self.start(name, [sys.executable, *args], env)

    def wait_http(self, proc: subprocess.Popen[bytes], url: str, timeout: float = 60) -> None:
        def ready() -> bool:
            if proc.poll() is not None:
                raise BenchError(f"{proc.args} exited ({proc.returncode}):\n{tail(proc)}")
            return http_ok(url)

        wait_until(ready, timeout=timeout, what=f"{url} to answer", interval=0.05)

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 15) -> None:
        """SIGTERM the process group, SIGKILL it if still there after ``grace`` s."""
        if proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        _signal_group(proc, signal.SIGKILL)  # children left behind by the leader too
        proc.wait(timeout=10)
        if proc in self.running:
            self.running.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.running)):
            self.stop(proc)


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def tail(proc: subprocess.Popen[bytes], lines: int = 30) -> str:
    path: Path | None = getattr(proc, "log_path", None)
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class ResourceSampler:
    """Peak RSS and CPU time of process trees (a leader and all its descendants), sampled in
    a background thread every ``interval`` seconds while the ``with`` block runs."""

    def __init__(self, pids: list[int], interval: float = 0.2) -> None:
        self.roots = [psutil.Process(pid) for pid in pids]
        self.interval = interval
        self.peak_rss = 0
        self._cpu: dict[int, float] = {}  # last CPU seconds seen per pid (children come and go)
        self._cpu_start: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.started = self.ended = 0.0

    def __enter__(self) -> ResourceSampler:
        self.started = time.monotonic()
        self._sample(first=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sample()
        self.ended = time.monotonic()

    def _tree(self) -> list[psutil.Process]:
        procs: list[psutil.Process] = []
        for root in self.roots:
            try:
                procs += [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
        return procs

    def _sample(self, *, first: bool = False) -> None:
        rss = 0
        for proc in self._tree():
            try:
                with proc.oneshot():
                    rss += proc.memory_info().rss
                    times = proc.cpu_times()
            except psutil.Error:
                continue
            cpu = times.user + times.system
            if first:
                self._cpu_start[proc.pid] = cpu
            self._cpu[proc.pid] = cpu
        self.peak_rss = max(self.peak_rss, rss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def result(self) -> dict[str, float]:
        cpu = sum(v - self._cpu_start.get(pid, 0.0) for pid, v in self._cpu.items())
        wall = max(self.ended - self.started, 1e-9)
        return {
            "peak_rss_mb": round(self.peak_rss / 2**20, 1),
            "cpu_seconds": round(cpu, 2),
            "cpu_percent": round(100 * cpu / wall, 1),
            "wall_seconds": round(wall, 2),
        }
