"""A ready step with nobody to run it says `no_live_worker`, on REST and on GraphQL alike.

Liveness comes from the heartbeats of `tasker worker` processes, or, in the embedded server,
from its own worker pool consuming (`server.services.dependencies.Liveness`). The `services`
fixture runs no worker and writes no heartbeat: the production server with every worker
stopped.
"""

import os
import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import redis

from server.app import create_app
from server.container import Services
from server.db.models import WorkerHeartbeat
from server.domain.views import CreateTask
from tests.conftest import REDIS_URL, fast_settings

LINEAR: dict[str, Any] = {"sleep": 0}
"""`shapes.linear` is a -> b -> c -> d: `a` is ready at once, `b` waits on it."""

QUERY = """query($id: ID!) { task(id: $id) {
  steps { name blockedReason { code } }
  dependencies { readySteps blockedSteps { step reason { code } } } } }"""


async def create(services: Services) -> str:
    task, _ = await services.tasks.create_task(
        CreateTask(namespace="shapes", name="linear", context=LINEAR)
    )
    return str(task.id)


async def codes(client: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    """What REST and GraphQL say of step `a`, each way they say it."""
    shown = await client.get(f"/tasker/tasks/{task_id}?include_dependencies=true")
    assert shown.status_code == 200, shown.text
    deps = shown.json()["dependencies"]
    listed = await client.get(f"/tasker/tasks/{task_id}/workflow_steps")
    assert listed.status_code == 200, listed.text
    one = await client.get(f"/tasker/tasks/{task_id}/workflow_steps/a")
    assert one.status_code == 200, one.text
    answer = await client.post(
        "/tasker/graphql", json={"query": QUERY, "variables": {"id": task_id}}
    )
    assert answer.status_code == 200 and "errors" not in answer.json(), answer.text
    task = answer.json()["data"]["task"]
    steps = {s["name"]: s["blockedReason"] for s in task["steps"]}
    blocked = {b["step"]: b["reason"]["code"] for b in task["dependencies"]["blockedSteps"]}
    assert steps["b"]["code"] == "waiting_on_parents"  # whatever the workers do
    return {
        "rest_dependencies": deps["blocked_reasons"].get("a", {}).get("code"),
        "rest_ready": deps["ready_steps"],
        "rest_steps": by_name(listed.json()["workflow_steps"])["a"]["blocked_reason"]["code"],
        "rest_step": one.json()["blocked_reason"]["code"],
        "graphql_step": steps["a"]["code"],
        "graphql_blocked": blocked.get("a"),
        "graphql_ready": task["dependencies"]["readySteps"],
    }


def by_name(steps: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in steps}


def no_worker() -> dict[str, Any]:
    code = "no_live_worker"
    return {
        "rest_dependencies": code,
        "rest_ready": [],
        "rest_steps": code,
        "rest_step": code,
        "graphql_step": code,
        "graphql_blocked": code,
        "graphql_ready": [],
    }


def queued() -> dict[str, Any]:
    code = "queued"
    return {
        "rest_dependencies": None,  # a queued step is ready, not blocked
        "rest_ready": ["a"],
        "rest_steps": code,
        "rest_step": code,
        "graphql_step": code,
        "graphql_blocked": None,
        "graphql_ready": ["a"],
    }


@pytest.fixture
async def client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(services=services))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def beat(services: Services, worker_id: str = "elsewhere:1:abc") -> None:
    """A `tasker worker` process's heartbeat, as it writes it."""
    await services.workers.heartbeat(worker_id, "elsewhere", 1, services.changes.clock.now())


async def test_no_heartbeat_says_no_live_worker_then_a_fresh_one_says_queued(services, client):
    task_id = await create(services)
    assert await codes(client, task_id) == no_worker()
    await beat(services)
    assert await codes(client, task_id) == queued()


async def test_a_stale_heartbeat_is_no_live_worker(services, client):
    task_id = await create(services)
    await beat(services)
    old = services.changes.clock.now() - services.workers.live_within - timedelta(seconds=1)
    await WorkerHeartbeat.all().update(last_seen_at=old)
    assert await codes(client, task_id) == no_worker()
    await beat(services)  # the worker is back
    assert await codes(client, task_id) == queued()


class DropNudges:
    """A dispatcher that loses every nudge, so that a ready step stays ready."""

    def dispatch(
        self, step_ids: Any, delay_seconds: float = 0.0, priority: int = 2, limited: bool = False
    ) -> None:
        pass

    def backlog(self) -> int:
        return 0


async def test_the_embedded_server_never_calls_its_own_workers_dead(database_url):
    app = create_app(fast_settings(database_url))
    core: Services = app.state.services
    async with app.router.lifespan_context(app):
        # Before its first heartbeat is even written, the server knows its workers consume.
        assert core.tasks.liveness.consuming_here
        await WorkerHeartbeat.all().delete()
        core.set_dispatcher(DropNudges())
        task_id = await create(core)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            assert await codes(c, task_id) == queued()
    assert not core.tasks.liveness.consuming_here  # stopped with the server


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="needs TASKER_TEST_REDIS_URL")
async def test_a_server_with_a_broker_and_no_worker_process_says_no_live_worker(database_url):
    """`tasker serve` with a broker URL runs no worker itself: `tasker worker` processes do."""
    assert REDIS_URL
    redis.Redis.from_url(REDIS_URL).flushdb()
    app = create_app(fast_settings(database_url, broker_url=REDIS_URL))
    core: Services = app.state.services
    async with app.router.lifespan_context(app):
        assert not core.tasks.liveness.consuming_here
        task_id = await create(core)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            assert await codes(c, task_id) == no_worker()
            await beat(core, f"{socket.gethostname()}:{os.getpid()}:worker")
            assert await codes(c, task_id) == queued()
