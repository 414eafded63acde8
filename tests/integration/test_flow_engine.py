"""Flow control under the embedded workers, on every step store: many tasks of several keys
with a limit of 2 per key all complete, and the history rows show no key over its limit."""

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from tortoise import Tortoise

from server.container import Services
from server.db.models import LimitSlot, Transition, WorkflowStep
from server.domain.states import StepState, TaskState
from server.domain.views import CreateTask
from server.registry.handler_registry import HandlerRegistry
from tests.conftest import BACKEND, ROOT, WORKFLOWS, on_every_store
from tests.support.waiting import wait_for_task

pytestmark = on_every_store
FLOW = ROOT / "tests" / "fixtures" / "flow"


@pytest.fixture(scope="module")
def registry() -> Iterator[HandlerRegistry]:
    yield HandlerRegistry.load([WORKFLOWS, FLOW], examples=False)


async def most_running_per_key(step_keys: dict[int, str]) -> dict[str, int]:
    """From the history rows alone: the most steps of each key in progress at once (a claim
    counts +1, any move out of in_progress -1, in history order)."""
    rows = (
        await Transition.filter(step_id__in=list(step_keys))
        .order_by("id")
        .values("step_id", "from_status", "to_status")
    )
    running: dict[str, int] = {}
    most: dict[str, int] = {}
    for r in rows:
        key = step_keys[r["step_id"]]
        if r["to_status"] == StepState.IN_PROGRESS.value:
            running[key] = running.get(key, 0) + 1
        elif r["from_status"] == StepState.IN_PROGRESS.value:
            running[key] -= 1
        most[key] = max(most.get(key, 0), running.get(key, 0))
    return most


async def test_a_limit_of_two_per_key_holds_across_many_tasks_and_all_complete(
    engine: Services,
) -> None:
    keys = ["k0", "k1"]  # 4 worker threads: more than the 2 slots of a key
    created: list[Any] = []
    for i in range(32):
        context = {"customer": keys[i % 2], "sleep": 0.05}
        task, _ = await engine.tasks.create_task(
            CreateTask(namespace="flow", name="limited", context=context)
        )
        created.append(task)
    finished = await asyncio.gather(*(wait_for_task(engine, t.id, timeout=60) for t in created))
    assert {t.status for t in finished} == {TaskState.COMPLETE}
    rows = await WorkflowStep.filter(task_id__in=[t.id for t in created]).values("id", "flow")
    step_keys = {r["id"]: r["flow"]["limits"][0]["key"] for r in rows}
    most = await most_running_per_key(step_keys)
    assert set(most) == set(keys)
    assert max(most.values()) <= 2, most
    assert max(most.values()) == 2  # the limit is reached, not just respected by idling
    # Every slot was released: no row holds or waits once all is done.
    assert await LimitSlot.all().count() == 0
    await verifier_agrees()


async def verifier_agrees() -> None:
    """bench/verify.py's flow-control invariants hold on this run (PostgreSQL only: the
    verifier reads a cluster's PostgreSQL database)."""
    if BACKEND != "postgres":
        return
    from bench.verify import FLOW_CHECKS

    conn = Tortoise.get_connection("default")
    for label, sql in FLOW_CHECKS:
        rows = await conn.execute_query_dict(sql)
        assert list(rows[0].values()) == [0], label


async def test_rate_and_handler_limits_hold_under_the_workers(engine: Services) -> None:
    created = []
    for i in range(6):
        task, _ = await engine.tasks.create_task(
            CreateTask(namespace="flow", name="serial", context={"customer": f"c{i % 2}"})
        )
        created.append(task)
    for _ in range(4):
        task, _ = await engine.tasks.create_task(
            CreateTask(namespace="flow", name="rated", context={"tenant": "t"})
        )
        created.append(task)
    finished = await asyncio.gather(*(wait_for_task(engine, t.id, timeout=60) for t in created))
    assert {t.status for t in finished} == {TaskState.COMPLETE}
    starts = sorted(
        r["created_at"]
        for r in await Transition.filter(
            task_id__in=[t.id for t in created[6:]],
            step_id__not_isnull=True,
            to_status=StepState.IN_PROGRESS.value,
        ).values("created_at")
    )
    # 3 starts per 10 s: the 4th waited for the first to leave the window.
    assert (starts[3] - starts[0]).total_seconds() >= 9.9
    await verifier_agrees()
