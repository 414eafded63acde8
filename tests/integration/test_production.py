"""Production topology: PostgreSQL, Redis and real `tasker worker` processes.

Runs in the PostgreSQL pass (`TASKER_TEST_BACKEND=postgres`) with TASKER_TEST_REDIS_URL set,
which CI always provides; the SQLite pass skips it.
"""

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from server.container import build_services
from server.domain.states import StepState, TaskState
from server.domain.views import CreateTask, TaskFilter
from server.infra.ports import NullDispatcher
from server.infra.pubsub import RedisListener
from server.services import queries
from tests.conftest import fast_settings
from tests.support.cluster import PrivateRedis, WorkerProcesses
from tests.support.production import PRODUCTION_ONLY
from tests.support.waiting import wait_for_task
from workers.pool import WorkerPool
from workers.runtime import LoopRuntime

pytestmark = PRODUCTION_ONLY


async def _producer(database_url, broker_url, registry):
    """Services as `tasker serve` has them in production: dispatch to Redis, no consuming."""
    settings = fast_settings(database_url, broker_url=broker_url)
    services = build_services(settings, NullDispatcher(), registry=registry)
    await services.open(migrate=False)
    WorkerPool(services, LoopRuntime(asyncio.get_running_loop()), threads=1)  # sets dispatcher
    return services


@pytest.fixture
async def cluster(database_url, broker_url, registry, tmp_path):
    services = await _producer(database_url, broker_url, registry)
    workers = WorkerProcesses(database_url, broker_url, tmp_path)
    try:
        yield services, workers
    finally:
        workers.stop()
        await services.close()


async def create(services, name, context):
    task, _ = await services.tasks.create_task(
        CreateTask(namespace="shapes", name=name, context=context)
    )
    return task


async def test_real_workers_run_every_shape_and_events_cross_processes(cluster):
    services, workers = cluster
    workers.start(2)
    listener = RedisListener(services.settings.broker_url, services.hub, queries.events_since)
    listening = asyncio.create_task(listener.run())
    await asyncio.wait_for(listener.ready.wait(), 5)
    seen: list[str] = []

    async def watch(task_id: str) -> None:
        async with services.hub.subscribe(lambda e: e.task_id == task_id) as stream:
            async for event in stream:
                seen.append(event.to_status)
                if event.step_name is None and event.to_status == "complete":
                    return

    task = await create(services, "mixed", {"sleep": 0.05})
    watcher = asyncio.create_task(watch(str(task.id)))
    others = [await create(services, s, {"sleep": 0.02}) for s in ("diamond", "tree", "linear")]
    for t in [task, *others]:
        assert (await wait_for_task(services, t.id, timeout=30)).status is TaskState.COMPLETE
    await asyncio.wait_for(watcher, 5)
    listening.cancel()
    assert seen.count("complete") >= 9  # nine steps, then the task, all produced by workers


async def test_killed_worker_mid_step_is_rerun_after_the_lease_expires(cluster, tmp_path):
    services, workers = cluster
    workers.start(2)
    marker = tmp_path / "crashed.pid"
    task = await create(
        services, "linear", {"crash_once": "b", "crash_marker": str(marker), "sleep": 0}
    )
    deadline = time.monotonic() + 20
    while not marker.exists() or not marker.read_text():
        assert time.monotonic() < deadline, workers.logs()
        await asyncio.sleep(0.02)
    os.kill(int(marker.read_text()), signal.SIGKILL)
    done = await wait_for_task(services, task.id, timeout=30)
    assert done.status is TaskState.COMPLETE, workers.logs()
    steps = {s.name: s for s in await services.steps.list_steps(task.id)}
    assert steps["a"].attempts == 1  # a completed step is never re-run
    assert steps["b"].attempts == 2
    history = (await services.steps.transitions([steps["b"].id]))[steps["b"].id]
    lost = [t for t in history if t.to_status == "error"]
    assert lost and lost[0].metadata["error_class"] == "WorkerLost"


async def test_five_hundred_concurrent_creations_all_complete(cluster):
    services, workers = cluster
    workers.start(2, threads=8)
    tasks = await asyncio.gather(
        *(create(services, ("diamond", "linear")[i % 2], {"sleep": 0}) for i in range(500))
    )
    assert len({t.id for t in tasks}) == 500
    deadline = time.monotonic() + 120
    while True:
        page = await services.tasks.list_tasks(
            TaskFilter(status=TaskState.COMPLETE), page=1, per_page=1
        )
        if page.total_count == 500:
            break
        assert time.monotonic() < deadline, f"{page.total_count}/500 complete"
        await asyncio.sleep(0.5)
    for t in tasks[::50]:
        steps = await services.steps.list_steps(t.id)
        assert all(s.status is StepState.COMPLETE and s.attempts == 1 for s in steps)


async def test_redis_restart_during_a_run_loses_no_task(database_url, registry, tmp_path: Path):
    private = PrivateRedis(tmp_path)
    private.start()
    services = await _producer(database_url, private.url, registry)
    workers = WorkerProcesses(database_url, private.url, tmp_path)
    try:
        workers.start(2)
        tasks = [await create(services, "diamond", {"sleep": 0.1}) for _ in range(20)]
        await asyncio.sleep(0.3)
        private.stop()  # Redis goes away with messages in flight
        more = [await create(services, "linear", {"sleep": 0}) for _ in range(10)]
        await asyncio.sleep(1.0)
        private.start()  # same port, empty: every queued message is gone
        for t in tasks + more:
            done = await wait_for_task(services, t.id, timeout=60)
            assert done.status is TaskState.COMPLETE, workers.logs()
    finally:
        workers.stop()
        private.stop()
        await services.close()
