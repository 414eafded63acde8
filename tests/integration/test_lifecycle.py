"""Tasks run to completion through the embedded engine, shape by shape."""

from server.domain.states import StepState, TaskState
from server.domain.views import CreateTask
from tests.conftest import on_every_store
from tests.support.waiting import wait_for_task

pytestmark = on_every_store


async def create(engine, name, context=None, **kw):
    task, created = await engine.tasks.create_task(
        CreateTask(namespace="shapes", name=name, context=context or {}, **kw)
    )
    assert created
    return task


def assert_parents_first(steps):
    by_name = {s.name: s for s in steps}
    for step in steps:
        for parent in step.parents:
            assert by_name[parent].completed_at <= step.started_at, (parent, step.name)


async def test_linear_task_completes_in_order(engine):
    task = await create(engine, "linear")
    done = await wait_for_task(engine, task.id)
    assert done.status is TaskState.COMPLETE
    steps = await engine.steps.list_steps(task.id)
    assert [s.status for s in steps] == [StepState.COMPLETE] * 4
    assert_parents_first(steps)
    assert steps[2].results == {"step": "c", "sync": True, "parents": ["b"]}
