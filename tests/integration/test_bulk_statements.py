"""A bulk cancel costs a few statements a chunk, whatever the number of tasks in it.

It was about 24 statements per four-step task (each move, history row and counter on its own),
so cancelling 1,000 tasks took over 10 s. The moves it writes are the single cancel's: the
task and each unfinished step cancelled, one history row each, counters kept.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from server.db.models import Task, Transition, WorkflowStep
from server.domain.views import CreateTask
from server.services.bulk import BulkFilter


class _Count(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.statements = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.statements += 1


@contextmanager
def counting() -> Iterator[_Count]:
    """Statements sent through Tortoise (its query log), while the block runs."""
    log = logging.getLogger("tortoise.db_client")
    count, level = _Count(), log.level
    log.setLevel(logging.DEBUG)
    log.addHandler(count)
    try:
        yield count
    finally:
        log.removeHandler(count)
        log.setLevel(level)


async def _create(services, n: int, name: str) -> list[str]:
    ids = []
    for _ in range(n):
        task, _ = await services.tasks.create_task(
            CreateTask(namespace="shapes", name=name, context={})
        )
        ids.append(str(task.id))
    return ids


async def test_cancelling_many_tasks_costs_what_cancelling_few_does(services):
    few = await _create(services, 3, "diamond")
    many = await _create(services, 40, "diamond")
    with counting() as small:
        answer = await services.tasks.bulk.cancel(BulkFilter(ids=few))
    assert answer.count == 3
    with counting() as large:
        answer = await services.tasks.bulk.cancel(BulkFilter(ids=many))
    assert answer.count == 40
    assert large.statements == small.statements, (small.statements, large.statements)

    for task_id in few + many:
        task = await Task.get(id=task_id)
        assert task.status == "cancelled"
        steps = await WorkflowStep.filter(task_id=task_id)
        assert {s.status for s in steps} == {"cancelled"}
        history = await Transition.filter(task_id=task_id).order_by("id")
        cancels = [h for h in history if h.to_status == "cancelled"]
        # The task's row first, then one per step, as a single cancel writes them.
        assert cancels[0].step_name is None
        assert sorted(h.step_name for h in cancels[1:]) == sorted(s.name for s in steps)


async def test_a_bulk_cancel_leaves_finished_and_cancelled_tasks_out(services):
    ids = await _create(services, 3, "linear")
    await services.tasks.cancel_task(ids[0])
    answer = await services.tasks.bulk.cancel(BulkFilter(ids=ids))
    assert sorted(answer.ids) == sorted(ids[1:])
    again = await services.tasks.bulk.cancel(BulkFilter(ids=ids))
    assert again.count == 0
    history = await Transition.filter(task_id=ids[0], to_status="cancelled", step_id=None)
    assert len(history) == 1  # not cancelled twice
