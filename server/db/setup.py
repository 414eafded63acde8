"""Connecting Tortoise and applying migrations, for the server, the workers and the CLI."""

import logging
from pathlib import Path
from typing import Any

from tortoise import Tortoise
from tortoise.backends.base.executor import EXECUTOR_CACHE

from server.db import loop_reads

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
MODELS = ["server.db.models", "aerich.models"]


def is_postgres(database_url: str) -> bool:
    """True for a PostgreSQL URL (the others are SQLite)."""
    return database_url.startswith(_POSTGRES_SCHEMES)


_POSTGRES_SCHEMES = ("postgres://", "postgresql://", "asyncpg://")


def tortoise_config(database_url: str, pool_max: int = 10) -> dict[str, Any]:
    """The Tortoise/aerich config dict for one database URL."""
    credentials: dict[str, Any] = {}
    if is_postgres(database_url):
        credentials = {"minsize": 1, "maxsize": pool_max}
    connection: str | dict[str, Any] = database_url
    if credentials:
        connection = {"engine": "server.db.fair_pool", "credentials": _pg(database_url)}
        connection["credentials"].update(credentials)
    return {
        "connections": {"default": connection},
        "apps": {"models": {"models": MODELS, "default_connection": "default"}},
        "use_tz": True,
        "timezone": "UTC",
    }


def _pg(url: str) -> dict[str, Any]:
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 5432,
        "user": unquote(parts.username or "postgres"),
        "password": unquote(parts.password or ""),
        "database": (parts.path or "/postgres").lstrip("/") or "postgres",
    }


async def open_database(database_url: str, *, pool_max: int = 10, migrate: bool = True) -> None:
    """Connect Tortoise for this process (global fallback: requests run in other tasks)."""
    if migrate:
        await apply_migrations(database_url)
    _forget_cached_sql()
    await Tortoise.init(
        config=tortoise_config(database_url, pool_max), _enable_global_fallback=True
    )


async def close_database() -> None:
    """Close every connection (SQLite hangs the process at exit otherwise)."""
    loop_reads.close_all()
    await Tortoise.close_connections()
    _forget_cached_sql()


def _forget_cached_sql() -> None:
    """Forget the INSERT and DELETE statements Tortoise keeps per model. It keys them by the
    connection's name, not its database: a process that opens `default` on SQLite and then on
    PostgreSQL (`server.testing`'s environment in a suite that also runs on a real database,
    in either order) would send one dialect's statements to the other."""
    EXECUTOR_CACHE.clear()


async def apply_migrations(database_url: str) -> list[str]:
    """Apply pending aerich migrations; returns the names applied."""
    from aerich import Command

    command = Command(
        tortoise_config=tortoise_config(database_url), app="models", location=str(MIGRATIONS_DIR)
    )
    await command.init()
    try:
        applied: list[str] = await command.upgrade(run_in_transaction=True)
    finally:
        await Tortoise.close_connections()
    if applied:
        log.info("applied migrations: %s", ", ".join(applied))
    return applied
