"""The commands that run here: serve, worker, migrate, prune, schema, token, handlers."""

import asyncio
import ipaddress
import sys
from pathlib import Path

import click

from server.config import Settings
from server.infra.logging import configure_logging, logging_config


def _settings(examples: bool) -> Settings:
    settings = Settings()
    if examples:
        settings = settings.model_copy(update={"examples": True})
    return settings


@click.group()
def main() -> None:
    """Tasker: workflow orchestration with a GraphQL API and a REST compatibility layer."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--examples", is_flag=True, help="Load the bundled example handlers.")
@click.option(
    "--workers",
    "uvicorn_workers",
    default=1,
    show_default=True,
    type=int,
    help="uvicorn worker processes (production mode).",
)
@click.option("--insecure", is_flag=True, help="Allow a non-loopback address with no auth key.")
def serve(host: str, port: int, examples: bool, uvicorn_workers: int, insecure: bool) -> None:
    """Run the API server (and, with no broker URL, the step workers in-process)."""
    import os

    import uvicorn

    from server.auth.keys import KeyConfigError, verification_key

    settings = _settings(examples)
    configure_logging(settings)
    try:
        verification_key(settings)  # a bad key refuses to start here, not in a traceback
    except KeyConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if not settings.auth_enabled:
        if not _is_loopback(host) and not insecure:
            shown = host if host.strip() else "'' (an empty host: every interface)"
            raise click.ClickException(
                f"refusing to listen on {shown} with authentication off; configure "
                "TASKER_JWT_SECRET or TASKER_JWT_PUBLIC_KEY, or pass --insecure"
            )
        click.echo(
            "Authentication is OFF (no TASKER_JWT_SECRET / TASKER_JWT_PUBLIC_KEY).", err=True
        )
        if insecure:
            os.environ["TASKER_INSECURE"] = "true"  # the app's own guard reads it
        if not settings.allowed_hosts:
            # Open mode answers the loopback names and the address it listens on, nothing
            # else (DNS rebinding); TASKER_ALLOWED_HOSTS overrides.
            os.environ["TASKER_ALLOWED_HOSTS"] = ",".join(_default_hosts(host))
            click.echo(
                f"Answering Host names {os.environ['TASKER_ALLOWED_HOSTS']} only "
                "(TASKER_ALLOWED_HOSTS adds others).",
                err=True,
            )
    if examples:
        os.environ["TASKER_EXAMPLES"] = "true"
    if uvicorn_workers > 1 and not settings.broker_url:
        raise click.ClickException(
            "--workers > 1 needs TASKER_BROKER_URL (embedded mode is one process)"
        )
    forwarders = settings.forwarded_allow_ips.strip()
    uvicorn.run(
        "server.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=uvicorn_workers,
        log_level=settings.log_level.lower(),
        log_config=logging_config(settings),  # applied in every spawned worker too
        server_header=False,
        # X-Forwarded-For/-Proto only from the proxies configured (uvicorn would trust
        # 127.0.0.1 by default, so a local client could pick its rate-limit key).
        proxy_headers=bool(forwarders),
        forwarded_allow_ips=forwarders or None,
    )


def _default_hosts(host: str) -> list[str]:
    from server.auth.browser import LOOPBACK_HOSTS

    listening = host.strip().strip("[]").lower()
    every = listening in ("", "0.0.0.0", "::")
    return list(dict.fromkeys([*LOOPBACK_HOSTS, *([] if every else [listening])]))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@main.command()
@click.option("--processes", default=1, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
@click.option("--examples", is_flag=True, help="Load the bundled example handlers.")
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Prometheus endpoint of these workers (default TASKER_WORKER_METRICS_PORT, 9191; "
    "0: none).",
)
@click.option(
    "--metrics-host",
    default=None,
    help="Address of that endpoint (default TASKER_WORKER_METRICS_HOST, 0.0.0.0).",
)
def worker(
    processes: int,
    threads: int,
    examples: bool,
    metrics_port: int | None,
    metrics_host: str | None,
) -> None:
    """Run step workers against TASKER_BROKER_URL (Redis) and TASKER_DATABASE_URL."""
    from workers.process import run_workers

    settings = _settings(examples)
    if metrics_port is not None:
        settings = settings.model_copy(update={"worker_metrics_port": metrics_port})
    if metrics_host is not None:
        settings = settings.model_copy(update={"worker_metrics_host": metrics_host})
    configure_logging(settings)
    if not settings.broker_url:
        raise click.ClickException(
            "tasker worker needs TASKER_BROKER_URL (e.g. redis://127.0.0.1:6379/0)"
        )
    sys.exit(run_workers(settings, processes=processes, threads=threads))


@main.command()
def migrate() -> None:
    """Apply pending database migrations to TASKER_DATABASE_URL."""
    from server.db.setup import apply_migrations

    settings = Settings()
    applied = asyncio.run(apply_migrations(settings.database_url))
    click.echo(f"applied: {', '.join(applied)}" if applied else "database is up to date")


@main.command()
@click.option("--older-than", "days", required=True, type=float, help="Age in days.")
@click.option("--batch", default=1000, show_default=True, type=int)
@click.option(
    "--include-errors", is_flag=True, help="Also delete tasks in error (they could be retried)."
)
def prune(days: float, batch: int, include_errors: bool) -> None:
    """Delete finished tasks (complete, cancelled, resolved) older than N days, in batches."""
    from datetime import timedelta

    from server.db.setup import close_database, open_database
    from server.infra.ports import SystemClock
    from server.services.retention import prune_finished

    settings = Settings()

    async def run() -> int:
        await open_database(settings.database_url, migrate=False)
        try:
            return await prune_finished(
                SystemClock(),
                older_than=timedelta(days=days),
                batch=batch,
                include_errors=include_errors,
            )
        finally:
            await close_database()

    click.echo(f"deleted {asyncio.run(run())} finished tasks older than {days:g} days")


@main.command()
def schema() -> None:
    """Print the GraphQL schema (SDL), as committed in graphql_schema/schema.graphql."""
    from graphql_schema.schema import sdl

    click.echo(sdl(), nl=False)


# --- `tasker token` mints a bearer token for scripts and tests (docs/security.md) ---------------
@main.command()
@click.option("--sub", "subject", required=True, help="Who the token names (its `sub`).")
@click.option(
    "--permission",
    "permissions",
    multiple=True,
    metavar="P",
    help="A grant, e.g. tasker.task:show, tasker.*:index or '*'; repeat for more.",
)
@click.option("--ttl", default="1h", show_default=True, help="Lifetime: 90s, 15m, 1h, 7d.")
@click.option(
    "--private-key",
    type=click.Path(exists=True, dir_okay=False),
    help="PEM private key for RS256/ES256 (else TASKER_JWT_PRIVATE_KEY).",
)
def token(subject: str, permissions: tuple[str, ...], ttl: str, private_key: str | None) -> None:
    """Print a token signed with the configured key (TASKER_JWT_SECRET, or the private key
    matching TASKER_JWT_PUBLIC_KEY), with TASKER_JWT_ISSUER/AUDIENCE when set."""
    from server.auth.tokens import issue

    try:
        click.echo(issue(Settings(), subject, permissions, ttl, private_key))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


# -----------------------------------------------------------------------------------------------


@main.group()
def handlers() -> None:
    """Inspect and validate handler definitions."""


@handlers.command("list")
@click.option("--examples", is_flag=True, help="Include the bundled example handlers.")
def handlers_list(examples: bool) -> None:
    """List the handlers loaded from TASKER_HANDLERS_PATH (and the examples)."""
    from server.container import load_registry

    registry = load_registry(_settings(examples))
    for info in registry.namespaces():
        click.echo(f"{info.name}: {info.description or ''}")
        for template in registry.handlers(info.name):
            versions = ", ".join(registry.versions(info.name, template.name))
            click.echo(f"  {template.name} ({versions}): {len(template.steps)} steps")


@handlers.command("validate")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
def handlers_validate(path: Path) -> None:
    """Check handler YAML files; exit 1 listing every problem."""
    from server.registry.handler_registry import count_path, validate_path

    problems = validate_path(path)
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        sys.exit(1)
    handler_count, step_count = count_path(path)
    click.echo(f"{path}: OK ({_plural(handler_count, 'handler')}, {_plural(step_count, 'step')})")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
