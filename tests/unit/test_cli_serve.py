"""`webhookd serve --workers N` refuses setups where several API processes would be wrong."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from webhookd.cli import app


@pytest.mark.parametrize(
    ("database_url", "redis_url"),
    [
        ("sqlite:///{tmp}/x.db", "redis://127.0.0.1:6379/0"),  # one writer at a time
        ("postgresql://u@127.0.0.1:1/db", None),  # per-process buckets: N times the limit
    ],
)
def test_several_api_processes_need_postgresql_and_redis(
    monkeypatch: pytest.MonkeyPatch, tmp_path, database_url: str, redis_url: str | None
) -> None:
    monkeypatch.setenv("WEBHOOKD_DATABASE_URL", database_url.format(tmp=tmp_path))
    for name in ("WEBHOOKD_REDIS_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    if redis_url:
        monkeypatch.setenv("WEBHOOKD_REDIS_URL", redis_url)
    result = CliRunner().invoke(app, ["serve", "--workers", "2", "--no-migrate"])
    assert result.exit_code == 2
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output).split())  # unwrap the error box
    assert "needs PostgreSQL and WEBHOOKD_REDIS_URL" in text
