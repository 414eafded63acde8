"""A task read with its steps in one statement is the task and the steps read apart."""

from uuid import uuid4

from server.container import Services
from server.db import step_reads
from server.domain.views import CreateTask
from server.services import queries


async def test_a_task_with_its_steps_is_the_same_as_read_apart(services: Services) -> None:
    # A context of some size: the steps' rows must not each carry it (they hold NULLs).
    context = {"payment_id": 7, "note": "x" * 20_000}
    task, _ = await services.tasks.create_task(
        CreateTask(namespace="payments", name="process_payment", context=context)
    )
    await services.tasks.create_task(  # another task's steps stay out
        CreateTask(namespace="payments", name="process_payment", context={"payment_id": 8})
    )
    for with_edges in (False, True):
        found = await step_reads.task_with_steps(task.id, with_edges=with_edges)
        assert found is not None
        view, steps = found
        assert view == await queries.find_task(task.id)
        apart = await queries.steps_by_task([task.id], with_edges=with_edges)
        assert steps == apart[task.id]
        assert [s.name for s in steps] == [
            "validate_payment",
            "charge_card",
            "update_order",
            "send_confirmation",
        ]
        assert any(s.parents for s in steps) is with_edges
    assert await step_reads.task_with_steps(uuid4()) is None
