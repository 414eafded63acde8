"""Single creations that arrive together are written together (`TaskCreator.create` through
a `GroupCommit`), and each caller still gets its own answer: its task, the task its
idempotency key already names, or its own error, never a neighbour's."""

import asyncio

from tortoise.exceptions import IntegrityError

from server.db.models import Task
from server.domain.errors import Conflict
from server.domain.views import CreateTask


def _req(i: int, **extra) -> CreateTask:
    return CreateTask(namespace="shapes", name="linear", context={"i": i}, **extra)


async def test_concurrent_creations_share_transactions_and_each_gets_its_task(services):
    together = services.tasks.creator._together
    before = together.batches
    answers = await asyncio.gather(*(services.tasks.create_task(_req(i)) for i in range(20)))
    assert all(created for _, created in answers)
    assert len({view.id for view, _ in answers}) == 20
    assert [view.context for view, _ in answers] == [{"i": i} for i in range(20)]
    assert together.batches - before < 20  # those that arrived during a write went together
    assert await Task.all().count() == 20


async def test_one_key_sent_five_times_at_once_creates_one_task(services):
    answers = await asyncio.gather(
        *(services.tasks.create_task(_req(1, idempotency_key="k-1")) for _ in range(5))
    )
    assert len({view.id for view, _ in answers}) == 1
    assert sorted(created for _, created in answers) == [False] * 4 + [True]
    assert await Task.all().count() == 1


async def test_a_key_reused_for_another_request_fails_only_that_caller(services):
    answers = await asyncio.gather(
        services.tasks.create_task(_req(1, idempotency_key="k-2")),
        services.tasks.create_task(_req(2, idempotency_key="k-2")),
        services.tasks.create_task(_req(3)),
        return_exceptions=True,
    )
    assert answers[0][1] is True
    assert isinstance(answers[1], Conflict)
    assert answers[2][1] is True


async def test_a_refused_row_fails_only_its_own_caller(services):
    """A child task its parent's step already started (a unique index) fails the batch's
    transaction: the others are written again on their own and succeed."""
    parent, _ = await services.tasks.create_task(_req(0))
    child = _req(9, parent_task_id=parent.id, parent_step="a")
    await services.tasks.create_task(child)
    answers = await asyncio.gather(
        services.tasks.create_task(_req(1)),
        services.tasks.create_task(child),
        services.tasks.create_task(_req(2)),
        return_exceptions=True,
    )
    assert answers[0][1] is True and answers[2][1] is True
    assert isinstance(answers[1], IntegrityError)
    assert await Task.all().count() == 4


async def test_an_idle_creation_is_written_at_once(services):
    together = services.tasks.creator._together
    before = (together.batches, together.items)
    await services.tasks.create_task(_req(1))
    assert (together.batches - before[0], together.items - before[1]) == (1, 1)
