"""Shared fixtures: settings, a migrated database per test, and a running engine.

The database backend is chosen per pytest run by `TASKER_TEST_BACKEND` (`sqlite`, the default,
or `postgres`, which needs `TASKER_TEST_POSTGRES_URL`): Tortoise caches dialect-specific SQL on
the model classes, so one process talks to one dialect. `make test` runs the suite once per
backend. On PostgreSQL the run gets its own database, truncated between tests.
"""

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.app import create_app
from server.config import Settings
from server.container import Services, build_services
from server.db import page_anchors
from server.infra import task_counts
from server.infra.ports import NullDispatcher
from server.registry.handler_registry import HandlerRegistry
from workers.pool import WorkerPool
from workers.runtime import LoopRuntime

pytest_plugins = ["tests.support.statements"]  # the `statements` fixture
ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / "tests" / "fixtures" / "workflows"
DYNAMIC = ROOT / "tests" / "fixtures" / "dynamic"
POSTGRES_URL = os.environ.get("TASKER_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("TASKER_TEST_REDIS_URL")

for _key in [k for k in os.environ if k.startswith("TASKER_") and not k.startswith("TASKER_TEST_")]:
    del os.environ[_key]

TABLES = (
    "tasker_transitions, tasker_step_edges, tasker_workflow_steps, tasker_tasks, "
    "tasker_named_steps, tasker_named_tasks, tasker_namespaces, tasker_workers, "
    "tasker_analytics_slots, tasker_analytics_task_slots, tasker_analytics_step_slots, "
    "tasker_schedules, tasker_schedule_fires, tasker_paused_handlers, "
    "tasker_limit_slots, tasker_limit_keys, tasker_step_items"
)


def fast_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings tuned so retries, sweeps and leases happen in test time."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "handlers_path": str(WORKFLOWS),
        "examples": True,
        "sweep_interval": 0.2,
        "redispatch_after": 1.0,
        "heartbeat_interval": 0.5,
        "backoff_base_seconds": 0.05,
        "backoff_max_seconds": 0.5,
        "lease_grace_seconds": 0.5,
        "embedded_worker_threads": 4,
        # One test process builds many apps: freezing the heap in each would keep every
        # earlier test's objects (and their finalizers) alive for good.
        "freeze_heap": False,
        # In-process clients make up their Host (testserver, t); the guard has its own tests.
        "allowed_hosts": "*",
    }
    values.update(overrides)
    return Settings(**values)


def _pg_test_url() -> str:
    assert POSTGRES_URL
    base, _, _db = POSTGRES_URL.rpartition("/")
    return f"{base}/tasker_test_{os.getpid()}"


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, migrated once."""
    import asyncpg

    from server.db.setup import apply_migrations

    url = _pg_test_url()
    name = url.rpartition("/")[2]

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}"'))
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    asyncio.run(apply_migrations(url))
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


BACKEND = os.environ.get("TASKER_TEST_BACKEND", "sqlite")
if BACKEND == "postgres" and not POSTGRES_URL:
    raise RuntimeError("TASKER_TEST_BACKEND=postgres needs TASKER_TEST_POSTGRES_URL")


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database: a SQLite file, or the run's PostgreSQL database truncated.

    What this process remembers of the previous test's database goes with it: a large count
    is reused for up to 30 s, so a test that made one "large" left its figure to the next
    (`test_graphql_hardening` then saw 3 tasks in an empty database when run right after
    `test_task_counts`)."""
    page_anchors.ANCHORS.clear()
    task_counts.COUNTS.clear()
    if BACKEND == "sqlite":
        yield f"sqlite://{tmp_path / 'tasker.db'}"
        return
    import asyncpg

    url = request.getfixturevalue("postgres_database")

    async def truncate() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
        finally:
            await conn.close()

    asyncio.run(truncate())
    yield url


STEP_STORES = ["postgres", "portable"] if BACKEND == "postgres" else ["portable"]
"""The step stores the engine can run on here: the portable one runs on PostgreSQL too."""


@pytest.fixture
def step_store(request: pytest.FixtureRequest) -> str | None:
    """The step store `services` and `engine` use: the database's own, unless a test module
    runs on each (`on_every_store`)."""
    store: str | None = getattr(request, "param", None)
    return store


on_every_store = pytest.mark.parametrize("step_store", STEP_STORES, indirect=True)
"""Runs a test of the engine's behaviour once per step store (`server.engine.store`)."""


@pytest.fixture(scope="session")
def registry() -> HandlerRegistry:
    """The examples plus the test workflow shapes."""
    return HandlerRegistry.load([WORKFLOWS], examples=True)


@pytest.fixture
async def services(
    database_url: str, registry: HandlerRegistry, step_store: str | None
) -> AsyncIterator[Services]:
    """Core services on an open database, with no workers (nudges are dropped)."""
    svc = build_services(
        fast_settings(database_url), NullDispatcher(), registry=registry, store=step_store
    )
    await svc.open()
    try:
        yield svc
    finally:
        await svc.close()


@pytest.fixture
async def engine(
    database_url: str, registry: HandlerRegistry, step_store: str | None
) -> AsyncIterator[Services]:
    """Core services plus embedded Dramatiq workers (StubBroker) and the sweeper."""
    svc = build_services(
        fast_settings(database_url), NullDispatcher(), registry=registry, store=step_store
    )
    await svc.open()
    pool = WorkerPool(svc, LoopRuntime(asyncio.get_running_loop()), threads=4)
    pool.start_consuming()
    pool.start_background()
    try:
        yield svc
    finally:
        await pool.stop_background()
        await asyncio.to_thread(pool.stop_consuming)
        await svc.close()


@pytest.fixture
def broker_url() -> str:
    """The test Redis, emptied; an unreachable Redis fails the test, it does not skip it."""
    import redis

    assert REDIS_URL
    client = redis.Redis.from_url(REDIS_URL)
    client.ping()
    client.flushdb()
    return REDIS_URL


@pytest.fixture
async def client(engine: Services) -> AsyncIterator[httpx.AsyncClient]:
    """The app over the running engine, called in process."""
    transport = httpx.ASGITransport(app=create_app(services=engine))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


# --- No token or secret ever reaches a log record, in the whole run ------------------------
import logging  # noqa: E402 - appended section, kept self-contained
import re  # noqa: E402


class LeakGuard(logging.Handler):
    """Sees every record of the run and keeps those quoting a JWT or a registered secret."""

    # Any JWT (header, payload, signature) whoever minted it; secrets are registered explicitly.
    JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*\.")
    # Our own code and the web stack log at DEBUG for the run; database drivers stay quiet.
    VERBOSE = ("server", "rest_compat", "graphql_schema", "workers", "tasker", "strawberry",
               "starlette", "uvicorn", "httpx", "jwt", "limits")  # fmt: skip

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.secrets: set[str] = set()
        self.leaks: list[str] = []
        self.seen = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.seen += 1
        try:
            text = record.getMessage()
        except Exception:  # a broken format string still must not hide a secret
            text = f"{record.msg} {record.args}"
        if record.exc_info and record.exc_info[1] is not None:
            text += f" {record.exc_info[1]!r}"
        if (
            self.JWT.search(text)
            or "PRIVATE KEY-----" in text
            or any(s in text for s in self.secrets)
        ):
            self.leaks.append(f"{record.name}: {text[:200]}")


LEAK_GUARD = LeakGuard()


def remember_secret(text: str) -> str:
    """Register a secret (a key, a minted token) the logs must never contain; returns it."""
    # Tokens are caught by their shape; only other secrets need a (short) list to check.
    if len(text) >= 16 and not LeakGuard.JWT.match(text) and "PRIVATE KEY" not in text:
        LEAK_GUARD.secrets.add(text)
    return text


@pytest.fixture(scope="session", autouse=True)
def no_secrets_in_logs() -> Iterator[LeakGuard]:
    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in LeakGuard.VERBOSE}
    for name in LeakGuard.VERBOSE:
        logging.getLogger(name).setLevel(logging.DEBUG)
    root.addHandler(LEAK_GUARD)
    try:
        yield LEAK_GUARD
    finally:
        root.removeHandler(LEAK_GUARD)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    assert LEAK_GUARD.leaks == [], "tokens or secrets were logged"
