"""Issue 13: a receiver verifies deliveries without installing the server. The base
distribution needs nothing beyond the standard library (`webhookd.verify`); the server is
the `server` extra, and the `webhookd` command says so when it is missing."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_base_distribution_has_no_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["dependencies"] == []
    server = " ".join(project["optional-dependencies"]["server"])
    for needed in ("fastapi", "sqlalchemy", "aiohttp", "celery", "uvicorn"):
        assert needed in server


def test_verify_runs_on_the_standard_library_alone() -> None:
    """`python -S`: no site-packages at all, only the package's own source."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import time;"
        "from webhookd.verify import verify, WebhookVerificationError;"
        "from webhookd.delivery.signing import signature_headers, generate_secret;"
        "s = generate_secret(); body = b'{}';"
        "h = signature_headers(secret=s, msg_id='dlv_x', timestamp=int(time.time()), body=body);"
        "verify(body, h, s);"
        "print(sorted(m for m in sys.modules if m.split('.')[0] not in sys.stdlib_module_names"
        " and m.split('.')[0] not in ('webhookd', '__main__')))"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-c", code, str(ROOT / "src")],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_command_without_the_server_says_what_to_install() -> None:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); sys.modules['typer'] = None;"
        "from webhookd.entry import main; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "src")],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 1
    assert "pip install 'webhookd[server]'" in result.stderr
    assert "Traceback" not in result.stderr
