"""Idempotency keys belong to the caller who sent them.

With authentication on, two callers using the same key get two tasks, and neither can read
or provoke a conflict on the other's task through the key; the same caller repeating a key
gets its first task back, over REST and GraphQL alike. In open mode (no token) keys keep one
global scope.
"""

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.testclient import TestClient

from server.app import create_app
from server.container import build_services
from server.db.setup import MIGRATIONS_DIR
from server.domain.errors import Conflict
from server.domain.views import CreateTask
from server.infra.ports import NullDispatcher
from server.registry.handler_registry import HandlerRegistry
from tests.conftest import BACKEND, POSTGRES_URL, fast_settings, remember_secret
from tests.security.conftest import pem_public, secured_database

PAYMENT = {"payment_id": 1, "amount": 10.0, "currency": "USD", "customer_id": 2}
CREATE = """mutation($input: CreateTaskInput!) { createTask(input: $input) { __typename
  ... on Task { id } ... on Error { code message } } }"""
KEY = "order-42"


def request(key: str | None = KEY, subject: str | None = None, **context: Any) -> CreateTask:
    return CreateTask(
        namespace="payments",
        name="process_payment",
        context={**PAYMENT, **context},
        idempotency_key=key,
        subject=subject,
    )


async def test_the_same_key_from_two_subjects_makes_two_tasks(services):
    alice, created_a = await services.tasks.create_task(request(subject="alice"))
    bob, created_b = await services.tasks.create_task(request(subject="bob"))
    assert created_a and created_b and alice.id != bob.id
    again, created = await services.tasks.create_task(request(subject="alice"))
    assert (again.id, created) == (alice.id, False)


async def test_another_subjects_key_never_conflicts(services):
    """A conflict would tell bob that alice used the key; he just gets his own task."""
    await services.tasks.create_task(request(subject="alice"))
    _, created = await services.tasks.create_task(request(subject="bob", amount=99.0))
    assert created
    with pytest.raises(Conflict):
        await services.tasks.create_task(request(subject="alice", amount=99.0))


async def test_open_mode_keeps_one_global_scope(services):
    first, _ = await services.tasks.create_task(request())
    again, created = await services.tasks.create_task(request())
    assert (again.id, created) == (first.id, False)
    with pytest.raises(Conflict):
        await services.tasks.create_task(request(amount=5.0))
    # A token's subject is a scope of its own, apart from the open one.
    other, created = await services.tasks.create_task(request(subject="alice"))
    assert created and other.id != first.id


async def test_concurrent_repeats_of_one_callers_key_make_one_task(services):
    results = await asyncio.gather(
        *(services.tasks.create_task(request(subject="carol")) for _ in range(5))
    )
    assert len({task.id for task, _ in results}) == 1
    assert sum(created for _, created in results) == 1


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def secured(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, key: Any
) -> Iterator[TestClient]:
    settings = fast_settings(
        secured_database(request, tmp_path_factory.mktemp("idempotency")),
        jwt_public_key=pem_public(key),
    )
    with TestClient(create_app(settings)) as client:
        yield client


def bearer(key: Any, subject: str) -> dict[str, str]:
    now = int(time.time())
    claims = {"sub": subject, "permissions": ["*"], "iat": now, "exp": now + 600}
    return {"Authorization": f"Bearer {remember_secret(jwt.encode(claims, key, 'RS256'))}"}


def rest_create(client: TestClient, headers: dict[str, str], key: str) -> tuple[int, str]:
    body = {"namespace": "payments", "name": "process_payment", "context": PAYMENT}
    response = client.post("/tasker/tasks", json=body, headers={**headers, "Idempotency-Key": key})
    return response.status_code, response.json().get("id") or response.json()["error"]["code"]


def graphql_create(client: TestClient, headers: dict[str, str], key: str) -> str:
    variables = {
        "input": {
            "namespace": "payments",
            "name": "process_payment",
            "context": PAYMENT,
            "idempotencyKey": key,
        }
    }
    response = client.post(
        "/tasker/graphql", json={"query": CREATE, "variables": variables}, headers=headers
    )
    result = response.json()["data"]["createTask"]
    assert result["__typename"] == "Task", result
    return str(result["id"])


def test_callers_with_tokens_never_share_a_key_over_rest_and_graphql(secured, key):
    alice, bob = bearer(key, "alice"), bearer(key, "bob")
    status, alice_task = rest_create(secured, alice, "shared-key")
    assert status == 201
    status, bob_task = rest_create(secured, bob, "shared-key")
    assert status == 201 and bob_task != alice_task
    assert rest_create(secured, alice, "shared-key") == (200, alice_task)
    assert rest_create(secured, bob, "shared-key") == (200, bob_task)
    # GraphQL shares the scope with REST: the same caller's key finds the same task.
    assert graphql_create(secured, alice, "shared-key") == alice_task
    assert graphql_create(secured, bob, "shared-key") == bob_task
    carol_task = graphql_create(secured, bearer(key, "carol"), "shared-key")
    assert carol_task not in (alice_task, bob_task)


# A task keyed before scopes existed, written as the previous schema (migration 7) holds it.
KEYED_BEFORE = """
INSERT INTO "tasker_namespaces" ("name") VALUES ('payments');
INSERT INTO "tasker_named_tasks" ("name", "version", "definition", "namespace_id")
    VALUES ('process_payment', '2.1.0', '{}', 1);
INSERT INTO "tasker_tasks" ("id", "namespace", "name", "version", "status", "context", "tags",
    "bypass_steps", "idempotency_key", "identity_hash", "requested_at", "created_at",
    "updated_at", "named_task_id")
    VALUES ('6f1c2a52-8d0e-4f53-9b8e-3c0f8a1d2e4b', 'payments', 'process_payment', '2.1.0',
    'complete', '{}', '[]', '[]', 'old-key', 'old-hash', '2026-01-01 00:00:00',
    '2026-01-01 00:00:00', '2026-01-01 00:00:00', 1);
"""


EARLIER_SCHEMA = """
import asyncio, sys
from aerich import Command
from tortoise import Tortoise, connections
from server.db.setup import tortoise_config

async def main(url, location, sql):
    command = Command(tortoise_config=tortoise_config(url), app="models", location=location)
    await command.init()
    await command.upgrade(run_in_transaction=True)
    await connections.get("default").execute_script(sql)
    await Tortoise.close_connections()

asyncio.run(main(*sys.argv[1:]))
"""


@pytest.fixture
def earlier_database(tmp_path: Path) -> Iterator[str]:
    """A database migrated up to migration 7 holding a keyed task: a SQLite file, or a new
    PostgreSQL database. Built in another process, as the previous release would have."""
    earlier = tmp_path / "earlier"
    (earlier / "models").mkdir(parents=True)
    for migration in sorted((MIGRATIONS_DIR / "models").glob("[0-7]_*.py")):
        shutil.copy(migration, earlier / "models")
    if BACKEND == "sqlite":
        url = f"sqlite://{tmp_path / 'upgrade.db'}"
    else:
        assert POSTGRES_URL
        name = f"tasker_upgrade_{os.getpid()}"
        admin(f'DROP DATABASE IF EXISTS "{name}"')
        admin(f'CREATE DATABASE "{name}"')
        url = f"{POSTGRES_URL.rpartition('/')[0]}/{name}"
    command = [sys.executable, "-c", EARLIER_SCHEMA, url, str(earlier), KEYED_BEFORE]
    subprocess.run(command, check=True, timeout=120)
    yield url
    if BACKEND != "sqlite":
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def admin(sql: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


async def test_upgrading_keeps_existing_keys_in_the_open_scope(
    earlier_database: str, registry: HandlerRegistry
) -> None:
    services = build_services(fast_settings(earlier_database), NullDispatcher(), registry=registry)
    await services.open()  # applies migration 8
    try:
        # Still guarded in the open scope: a different request under the key conflicts.
        with pytest.raises(Conflict):
            await services.tasks.create_task(request("old-key"))
        # A caller with a token has a scope of its own.
        _, created = await services.tasks.create_task(request("old-key", subject="alice"))
        assert created
    finally:
        await services.close()
