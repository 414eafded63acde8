"""kill -9 of a real `tasker worker` in the middle of a map, on PostgreSQL and Redis: every
item completes exactly once, an item runs again only when its attempt was lost with the
killed worker, and the map step completes with its results in input order."""

import asyncio
import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from server.db.models import StepItem, WorkflowStep
from server.domain.item_moves import ITEM_CLAIMED, ITEM_COMPLETE, ITEM_RETRYING
from server.domain.states import TaskState
from server.domain.views import CreateTask
from server.registry.handler_registry import HandlerRegistry
from server.services import queries
from tests.conftest import BACKEND, REDIS_URL, WORKFLOWS
from tests.integration.test_production import _producer
from tests.support.cluster import WorkerProcesses
from tests.support.waiting import wait_for_task

pytestmark = [
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.skipif(BACKEND != "postgres" or not REDIS_URL, reason="needs PostgreSQL and Redis"),
]

MAP_CRASH = Path(__file__).resolve().parent.parent / "fixtures" / "map_crash"
ITEMS = 300


@pytest.fixture
def registry() -> HandlerRegistry:
    return HandlerRegistry.load([WORKFLOWS, MAP_CRASH], examples=True)


@pytest.fixture
async def cluster(database_url, broker_url, registry, tmp_path):
    services = await _producer(database_url, broker_url, registry)
    workers = WorkerProcesses(database_url, broker_url, tmp_path)
    workers.env["TASKER_HANDLERS_PATH"] = f"{WORKFLOWS}:{MAP_CRASH}"
    # A killed worker is dead after 3 s without heartbeats (six missed), not the default 15 s.
    workers.env["TASKER_WORKER_DEAD_AFTER_SECONDS"] = "3"
    try:
        yield services, workers
    finally:
        workers.stop()
        await services.close()


def calls_in(log: Path) -> list[tuple[int, int, int]]:
    """(index, attempt, pid) of every handler call so far."""
    text = log.read_text() if log.exists() else ""
    return [tuple(map(int, line.split())) for line in text.splitlines()]  # type: ignore[misc]


@pytest.mark.timeout(90)
async def test_kill_9_mid_map_completes_every_item_once(cluster, tmp_path) -> None:
    services, workers = cluster
    workers.start(2)
    log = tmp_path / "calls.log"
    task, _ = await services.tasks.create_task(
        CreateTask(
            namespace="dynamic",
            name="map_logged",
            context={"numbers": list(range(ITEMS)), "log": str(log), "pause": 0.05},
        )
    )
    # Mid-map: once a fifth of the items have been called, kill the busier worker.
    deadline = time.monotonic() + 40
    while len(calls_in(log)) < ITEMS // 5:
        assert time.monotonic() < deadline, workers.logs()
        await asyncio.sleep(0.02)
    killed = Counter(pid for _, _, pid in calls_in(log)).most_common(1)[0][0]
    os.kill(killed, signal.SIGKILL)
    done = await wait_for_task(services, task.id, timeout=45)
    assert done.status is TaskState.COMPLETE, workers.logs()

    step = await WorkflowStep.get(task_id=task.id, name="each")
    assert step.results == [i * 10 for i in range(ITEMS)]  # in input order
    calls = calls_in(log)
    assert len(calls) < ITEMS * 2  # the killed worker's pid was not dead already
    assert any(pid != killed for _, _, pid in calls)
    by_item: dict[int, list[tuple[int, int]]] = {}
    for index, attempt, pid in calls:
        by_item.setdefault(index, []).append((attempt, pid))
    assert sorted(by_item) == list(range(ITEMS))  # every item was called

    history: dict[int, list[str]] = {}
    lost: dict[int, int] = Counter()
    for row in await queries.item_transitions(step.id):
        history.setdefault(row.metadata["item"], []).append(row.reason or "")
        if row.reason == ITEM_RETRYING:
            assert row.metadata["error_class"] == "WorkerLost"
            lost[row.metadata["item"]] += 1
    attempts = dict(await StepItem.filter(step_id=step.id).values_list("idx", "attempts"))
    for index, runs in by_item.items():
        reasons = history[index]
        # Completed exactly once, as its last move: no call after it completed.
        assert reasons.count(ITEM_COMPLETE) == 1 and reasons[-1] == ITEM_COMPLETE, reasons
        # The completing attempt is its last claim; an earlier one is a lost attempt (the
        # killed worker may have died before or after calling the handler).
        claims = reasons.count(ITEM_CLAIMED)
        assert claims == attempts[index] == runs[-1][0] and len(runs) <= claims, (index, runs)
        assert lost[index] == claims - 1, (index, reasons)
        if claims > 1:
            # Run again only because its attempt went with the killed worker.
            assert all(pid == killed for _, pid in runs[:-1]), (index, runs)
            assert runs[-1][1] != killed
    assert sum(lost.values()) >= 1  # the killed worker was mid-item: something was lost
