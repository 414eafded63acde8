"""Every workflow shape completes with parents before children and parallel branches overlapping."""

import pytest

from server.domain.states import StepState, TaskState
from server.domain.views import CreateTask
from tests.conftest import on_every_store
from tests.support.waiting import wait_for_task

pytestmark = on_every_store

PARALLEL = {
    "diamond": [("left", "right")],
    "tree": [("branch_a", "branch_b"), ("leaf_a1", "leaf_b2")],
    "parallel_merge": [("r1", "r4"), ("r2", "r3")],
    "mixed": [("s1", "s2")],
}


def overlaps(a, b) -> bool:
    return a.started_at < b.completed_at and b.started_at < a.completed_at


@pytest.mark.parametrize("shape", ["linear", "diamond", "tree", "parallel_merge", "mixed"])
async def test_shape_completes_with_parents_first(engine, shape):
    task, _ = await engine.tasks.create_task(
        CreateTask(namespace="shapes", name=shape, context={"sleep": 0.15})
    )
    done = await wait_for_task(engine, task.id)
    assert done.status is TaskState.COMPLETE
    assert done.completed_at is not None
    steps = {s.name: s for s in await engine.steps.list_steps(task.id)}
    assert all(s.status is StepState.COMPLETE and s.attempts == 1 for s in steps.values())
    for step in steps.values():
        for parent in step.parents:
            assert steps[parent].completed_at <= step.started_at, (parent, step.name)
        assert sorted(step.results["parents"]) == sorted(step.parents)
    for a, b in PARALLEL.get(shape, []):
        assert overlaps(steps[a], steps[b]), f"{a} and {b} did not run in parallel"


async def test_many_tasks_at_once_all_complete(engine):
    ids = []
    for i in range(20):
        task, _ = await engine.tasks.create_task(
            CreateTask(namespace="shapes", name=["diamond", "tree"][i % 2], context={"sleep": 0})
        )
        ids.append(task.id)
    for task_id in ids:
        assert (await wait_for_task(engine, task_id)).status is TaskState.COMPLETE
