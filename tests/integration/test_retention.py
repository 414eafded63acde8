"""Retention deletes only finished tasks older than the cutoff, with their steps and history."""

from datetime import timedelta

from server.db.models import Task
from server.domain.states import TaskState
from server.domain.views import CreateTask, TaskFilter
from server.services.retention import prune_finished
from tests.support.waiting import wait_for_task


async def test_prune_deletes_old_finished_tasks_in_batches(engine):
    tasks = []
    for _ in range(5):
        task, _ = await engine.tasks.create_task(
            CreateTask(namespace="shapes", name="linear", context={"sleep": 0})
        )
        tasks.append(task)
    for task in tasks:
        await wait_for_task(engine, task.id)
    running, _ = await engine.tasks.create_task(
        CreateTask(namespace="shapes", name="linear", context={"sleep": 1})
    )
    old = engine.changes.clock.now() - timedelta(days=40)
    await Task.filter(id__in=[t.id for t in tasks[:3]]).update(completed_at=old)
    deleted = await prune_finished(engine.changes.clock, older_than=timedelta(days=30), batch=2)
    assert deleted == 3
    left = await engine.tasks.list_tasks(TaskFilter())
    assert {t.id for t in left.items} == {t.id for t in tasks[3:]} | {running.id}
    assert (await engine.tasks.get_task(running.id)).status is not TaskState.COMPLETE


async def test_prune_keeps_errored_tasks_unless_asked(services):
    """Issue 7: tasks in error may still be retried, so only `include_errors` deletes them."""
    from tests.integration.test_history_index import _old_task

    done = await _old_task(services, "complete")
    failed = await _old_task(services, "error")
    clock = services.changes.clock
    assert await prune_finished(clock, older_than=timedelta(days=30)) == 1
    assert {t.id for t in (await services.tasks.list_tasks(TaskFilter())).items} == {failed}
    assert await prune_finished(clock, older_than=timedelta(days=30), include_errors=True) == 1
    assert (await services.tasks.list_tasks(TaskFilter())).items == ()
    assert done != failed
