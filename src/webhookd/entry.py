"""The ``webhookd`` command. The server's dependencies are an extra (``webhookd[server]``):
without them the command says how to install them instead of a traceback."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from webhookd.cli import app
    except ModuleNotFoundError as exc:
        print(
            f"webhookd: the server is not installed ({exc.name} is missing): "
            "pip install 'webhookd[server]'",
            file=sys.stderr,
        )
        raise SystemExit(1) from None
    app()
