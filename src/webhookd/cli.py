"""Command line: ``webhookd serve``, ``worker``, ``migrate``, ``demo``, ``purge``,
``listen`` (alias ``receiver``).

Each command checks what it needs before it starts anything (webhookd/startup.py) and
answers a problem with one line on stderr and a non-zero exit status."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from webhookd import __version__
from webhookd.startup import (
    StartupError,
    check_broker,
    check_database,
    check_port_free,
    free_port_from,
    load_settings,
    operator_errors,
)

app = typer.Typer(help="webhookd: multi-tenant webhook delivery.", no_args_is_help=True)


@app.command()
def migrate(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply the database migrations (WEBHOOKD_DATABASE_URL)."""
    from webhookd.migrate import upgrade

    with operator_errors():
        settings = load_settings()
        check_database(settings)
        upgrade(settings, revision)
    typer.echo(f"database migrated to {revision}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    migrate_first: Annotated[
        bool, typer.Option("--migrate/--no-migrate", help="Apply migrations before starting")
    ] = True,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="API processes sharing the port (PostgreSQL and WEBHOOKD_REDIS_URL required: "
            "each process has its own group commit, the rate limits are shared in Redis)",
        ),
    ] = 1,
) -> None:
    """Run the HTTP API with the delivery workers in the same process."""
    from webhookd.api.server import run
    from webhookd.app import create_app
    from webhookd.migrate import upgrade
    from webhookd.security import resolve_admin_key, resolve_server_secrets

    with operator_errors():
        settings = load_settings()
        if workers > 1 and (settings.is_sqlite or not settings.redis_url):
            # SQLite has one writer; in-memory token buckets per process would multiply limits.
            raise StartupError("--workers > 1 needs PostgreSQL and WEBHOOKD_REDIS_URL", code=2)
        check_port_free(host, port)
        check_database(settings)
        if migrate_first:
            upgrade(settings)
        admin_key, source = resolve_admin_key(settings)
        secrets_source = resolve_server_secrets(settings).source
        # Several processes each build their app from the same environment.
        app_or_factory = "webhookd.app:create_app" if workers > 1 else create_app(settings)
    if source == "WEBHOOKD_ADMIN_KEY":  # the operator knows it; keep it out of log collectors
        admin_key = admin_key[:8] + "…"
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host  # noqa: S104
    typer.echo(
        f"webhookd {__version__}\n"
        f"  API       http://{shown}:{port}  (OpenAPI docs: http://{shown}:{port}/docs)\n"
        f"  database  {settings.database_shown}\n"
        f"  admin key {admin_key}  (from {source})\n"
        f"  encryption key and API key pepper from {secrets_source}\n"
        f"  private targets {'ALLOWED' if settings.allow_private_targets else 'refused'}"
        " (WEBHOOKD_ALLOW_PRIVATE_TARGETS)"
        + (f"\n  {workers} API processes" if workers > 1 else ""),
        err=True,
    )
    run(app_or_factory, workers=workers, host=host, port=port, settings=settings)


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Celery threads (default WEBHOOKD_WORKER_CONCURRENCY)")
    ] = None,
) -> None:
    """Run a distributed delivery worker (Celery on WEBHOOKD_BROKER_URL / CELERY_BROKER_URL)."""
    from webhookd.security import resolve_server_secrets
    from webhookd.worker import create_worker_app

    with operator_errors():
        settings = load_settings()
        if not settings.broker_url:
            raise StartupError("set WEBHOOKD_BROKER_URL (or CELERY_BROKER_URL) to run workers", 2)
        resolve_server_secrets(settings)  # production without its secrets stops here
        check_database(settings)
        check_broker(settings)
        if settings.metrics_port:
            if settings.metrics_port_fallback:
                port = free_port_from(settings.metrics_host, settings.metrics_port)
                settings = settings.model_copy(update={"metrics_port": port})
            else:
                check_port_free(settings.metrics_host, settings.metrics_port, "metrics port")
    argv = [
        "worker",
        f"--loglevel={settings.log_level}",
        f"--hostname=webhookd-{os.getpid()}@%h",
        "--without-gossip",
        "--without-mingle",
    ]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    create_worker_app(settings).worker_main(argv)


@app.command()
def demo(
    url: Annotated[
        str | None, typer.Option(help="A running webhookd (default: http://127.0.0.1:8000)")
    ] = None,
    admin_key: Annotated[
        str | None, typer.Option(help="Its admin key (default: WEBHOOKD_ADMIN_KEY or the dev file)")
    ] = None,
) -> None:
    """Send a first signed webhook to a local listener and verify it, then show the curl
    commands that do the same. Uses a running webhookd, or starts one of its own."""
    import asyncio

    from webhookd.demo import DemoError, run_demo
    from webhookd.security import admin_key_path

    with operator_errors():
        settings = load_settings()
        key = admin_key or settings.admin_key
        if key is None and admin_key_path(settings).exists():
            key = admin_key_path(settings).read_text().strip()
        try:
            typer.echo(asyncio.run(run_demo(url, key)))
        except DemoError as exc:
            raise StartupError(str(exc)) from None


@app.command()
def purge(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing")
    ] = False,
) -> None:
    """Delete what is past its retention now: events older than their tenant's
    retention_days (WEBHOOKD_RETENTION_DAYS by default) with their deliveries, attempts and
    dead-letter entries, never a live delivery; in batches of WEBHOOKD_PURGE_BATCH_SIZE."""
    import asyncio

    from webhookd.jobs.retention import purge_now

    with operator_errors():
        settings = load_settings()
        check_database(settings)
        cutoffs, purged = asyncio.run(purge_now(settings, dry_run=dry_run))
    if not cutoffs:
        typer.echo("retention is 0 days (keep everything): nothing to purge")
        return
    for cutoff in cutoffs:
        who = (
            "tenants on the default"
            if cutoff.days is None
            else f"tenants keeping {cutoff.days} days"
        )
        typer.echo(f"{who}: older than {cutoff.before.isoformat(timespec='seconds')}")
    verb = "would delete" if dry_run else "deleted"
    counts = ", ".join(f"{count} {table}" for table, count in purged.as_dict().items())
    typer.echo(f"{verb}: {counts}")


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def _http_url(value: str | None) -> str | None:
    from urllib.parse import urlsplit

    if value is None:
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise typer.BadParameter(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise typer.BadParameter(
            "must be an http:// or https:// URL, such as http://127.0.0.1:8000/hook"
        )
    return value


@app.command("listen")
def listen(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on")] = 9000,
    secret: Annotated[
        str | None,
        typer.Option(
            envvar=["WEBHOOKD_LISTEN_SECRET", "WEBHOOKD_RECEIVER_SECRET"],
            help="Tenant secret (whsec_...) to verify the signatures with",
        ),
    ] = None,
    status: Annotated[
        int,
        typer.Option(
            min=200,
            max=599,
            help="Status to answer with. Non-2xx: every request fails, or with --fail-every "
            "only every Nth (the others answer 200)",
        ),
    ] = 200,
    delay: Annotated[
        float, typer.Option(min=0.0, metavar="SECONDS", help="Wait this long before answering")
    ] = 0.0,
    fail_every: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="N",
            help="Fail requests N, 2N, 3N... (counted from 1): with --status if that is "
            "not a 2xx, else with 503",
        ),
    ] = None,
    forward_to: Annotated[
        str | None,
        typer.Option(
            callback=_http_url,
            metavar="URL",
            help="Forward each delivery (method, body, headers) to this URL and answer with "
            "its answer; 502 when it cannot be reached, 504 when it takes over 30s",
        ),
    ] = None,
    color: Annotated[
        bool | None,
        typer.Option(
            "--color/--no-color",
            show_default=False,
            help="Colour the output (default: on a terminal, unless NO_COLOR is set)",
        ),
    ] = None,
) -> None:
    """Run a webhook receiver on your machine (alias: receiver).

    It prints every delivery and checks its signatures, then answers it, fails on purpose
    or forwards it to your application."""
    import sys

    from webhookd.receiver import ListenOptions, run, use_color

    run(
        ListenOptions(
            host=host,
            port=port,
            secret=secret,
            status=status,
            delay=delay,
            fail_every=fail_every,
            forward_to=forward_to,
            color=use_color(color, sys.stdout.isatty(), os.environ),
        )
    )


# The same command under its first name.
app.command("receiver", help="Alias of `webhookd listen`.")(listen)
