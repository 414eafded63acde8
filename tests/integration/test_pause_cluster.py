"""Pause a handler with hundreds of tasks in flight on real `tasker worker` processes
(PostgreSQL + Redis): no step starts after the pause has committed (history rows, and the
verifier's invariant), and after the resume every task completes.

Prints its figures (tasks in flight at the pause, how long the pause and the drain took):

    TASKER_TEST_BACKEND=postgres TASKER_TEST_POSTGRES_URL=... TASKER_TEST_REDIS_URL=... \\
      pytest -s tests/integration/test_pause_cluster.py
"""

import asyncio
import time

import asyncpg

from bench.verify import CHECKS
from server.db.models import Task, Transition
from server.domain.states import TaskState
from server.domain.views import CreateTask
from tests.integration.test_production import _producer
from tests.support.cluster import WorkerProcesses
from tests.support.production import PRODUCTION_ONLY

pytestmark = PRODUCTION_ONLY

TASKS = 500
PAUSED_INVARIANT = next(sql for name, sql in CHECKS if "paused" in name)


async def test_pause_a_handler_with_500_tasks_in_flight(  # type: ignore[no-untyped-def]
    database_url, broker_url, registry, tmp_path
) -> None:
    services = await _producer(database_url, broker_url, registry)
    workers = WorkerProcesses(database_url, broker_url, tmp_path)
    try:
        workers.start(2, threads=8)
        # 500 tasks x 4 steps x 0.2 s on 16 threads: about 25 s of work, so most are in
        # flight (some steps running, others waiting) when the pause comes.
        request = CreateTask(namespace="shapes", name="linear", context={"sleep": 0.2})
        for _ in range(TASKS // 50):
            await asyncio.gather(*(services.tasks.create_task(request) for _ in range(50)))
        await asyncio.sleep(0.5)  # steps are running now

        started = time.monotonic()
        await services.pausing.pause_handler("shapes", "linear")
        pause_took = time.monotonic() - started
        paused_at = {
            r.task_id: r.id  # type: ignore[attr-defined]
            for r in await Transition.filter(reason="handler paused")
        }
        await asyncio.sleep(3)  # running steps finish; nothing new may start
        late = 0
        for task_id, pause_id in paused_at.items():
            late += await Transition.filter(
                task_id=task_id, reason="claimed", id__gt=pause_id
            ).count()
        unfinished = await Task.filter(
            namespace="shapes", name="linear", status__in=["pending", "in_progress"]
        ).count()
        assert late == 0, "steps started after the pause committed"
        assert paused_at, "every task finished before the pause: nothing was tested"

        started = time.monotonic()
        await services.pausing.resume_handler("shapes", "linear")
        deadline = time.monotonic() + 180
        while await Task.filter(status=TaskState.COMPLETE.value).count() < TASKS:
            assert time.monotonic() < deadline, workers.logs()[-3000:]
            await asyncio.sleep(0.2)
        drained = time.monotonic() - started

        conn = await asyncpg.connect(database_url)
        try:
            violations = await conn.fetchval(PAUSED_INVARIANT)
        finally:
            await conn.close()
        assert violations == 0
        print(
            f"\npause-handler bench: {TASKS} tasks, {len(paused_at)} in flight at the pause "
            f"({unfinished} still unfinished 3 s later), pause committed in {pause_took:.3f} s, "
            f"0 steps started while paused, all complete {drained:.2f} s after the resume"
        )
    finally:
        workers.stop()
        await services.close()
