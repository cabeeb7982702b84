"""A Celery worker's start-up output is JSON lines like the rest of webhookd's logs: no
banner, Celery's own loggers and Python's warnings through the JSON renderer; started as
``webhookd worker`` and as ``celery -A webhookd.worker worker``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.fixtures.processes import WorkerProcess
from tests.fixtures.stack import production_stack
from webhookd.config import Settings
from webhookd.migrate import upgrade


def json_lines(text: str) -> list[dict]:
    """Every line of ``text`` as a JSON object (fails on the first line that is not one)."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            record = json.loads(line)
        except ValueError:
            pytest.fail(f"line {number} is not JSON: {line!r}\n---\n{text}")
        assert isinstance(record, dict), line
        assert {"event", "level", "timestamp"} <= set(record), line
        found.append(record)
    return found


@pytest.mark.parametrize("via_celery", [False, True], ids=["webhookd-worker", "celery-A"])
def test_worker_start_up_is_json(tmp_path: Path, via_celery: bool) -> None:
    # INFO, so that Celery's own start-up lines (connected, ready) are written too.
    with production_stack(tmp_path, WEBHOOKD_LOG_LEVEL="INFO") as stack:
        upgrade(Settings(database_url=stack["WEBHOOKD_DATABASE_URL"]))
        log = tmp_path / "worker.log"  # stdout and stderr, as the worker wrote them
        worker = WorkerProcess(stack, log, via_celery=via_celery)
        if via_celery:
            worker.args[worker.args.index("--loglevel=WARNING")] = "--loglevel=INFO"
        try:
            worker.start()
            deadline = time.monotonic() + 20
            while "celery.apps.worker" not in log.read_text():  # Celery's "… ready." line
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            text = log.read_text()  # before the shutdown
        finally:
            worker.terminate()
    records = json_lines(text)
    events = [r["event"] for r in records]
    assert "worker.starting" in events
    assert "worker.ready" in events
    (starting,) = [r for r in records if r["event"] == "worker.starting"]
    assert starting["queues"] == ["webhookd.deliveries"]
    assert starting["tasks"] == ["webhookd.deliver"]
    assert starting["pool"] == "threads"
    assert "guest:***@" in starting["broker"]  # the password is not logged
    loggers = {r.get("logger") for r in records}
    assert "celery.worker.consumer.connection" in loggers  # "Connected to amqp://…"
    assert "celery.apps.worker" in loggers
    assert not any("-------------- " in line for line in text.splitlines())  # no banner
