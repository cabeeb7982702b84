"""The pages' vendored JavaScript and CSS are the files `make vendor-ui` fetched from npm:
their checksums match SHA256SUMS, and the templates load nothing from another host."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import webhookd.ui

UI = Path(webhookd.ui.__file__).parent
VENDOR = UI / "static" / "vendor"


def test_vendored_files_match_their_checksums() -> None:
    sums = {}
    for line in (VENDOR / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        sums[name] = digest
    assert {"htmx.min.js", "pico.min.css", "uPlot.iife.min.js", "uPlot.min.css"} <= set(sums)
    for name, digest in sums.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name


def test_templates_load_assets_from_this_server_only() -> None:
    for template in (UI / "templates").glob("*.html"):
        text = template.read_text()
        for url in re.findall(r'(?:src|href)="([^"{]+)"', text):
            assert url.startswith(("/", "#")), f"{template.name} loads {url}"
        assert "<script>" not in text and " style=" not in text, template.name
