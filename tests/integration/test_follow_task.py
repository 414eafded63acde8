"""Following a task (issue 7): what the hub delivers late or never is still sent, in order.

Two workers finishing sibling steps publish after their own commits, through Redis: the hub
can deliver cursor 101 before 100, or lose the oldest events of a slow subscriber. Both task
streams used to send what the hub delivered and skip anything below the last cursor sent.
"""

import asyncio
from datetime import UTC, datetime
from uuid import UUID

import pytest

from server.db.models import Transition, WorkflowStep
from server.domain.views import CreateTask, TransitionEvent
from server.services.follow import follow_task
from tests.conftest import BACKEND
from tests.support.task_lock import completion_waiting_for_task_lock


async def _record(task_id: UUID, step: WorkflowStep | None, to: str) -> None:
    """A committed transition that nobody publishes."""
    await Transition.create(
        task_id=task_id,
        step_id=step.id if step else None,
        step_name=step.name if step else None,
        from_status="in_progress",
        to_status=to,
        reason="test",
        metadata={},
        created_at=datetime.now(UTC),
    )


async def test_transitions_the_hub_delivers_out_of_order_are_all_sent_in_order(services):
    task, _ = await services.tasks.create_task(
        CreateTask(namespace="shapes", name="diamond", context={})
    )
    followed: list[TransitionEvent] = []

    async def follow() -> None:
        async for event in follow_task(services.hub, services.tasks, task.id, 0, quiet=0.05):
            if event is not None:
                followed.append(event)

    following = asyncio.create_task(follow())
    await asyncio.sleep(0.2)  # replayed the creation, now waiting on the hub
    left, right = await WorkflowStep.filter(task_id=task.id, name__in=["left", "right"])
    await _record(task.id, left, "complete")
    await _record(task.id, right, "complete")
    lower, higher = (await services.tasks.history(task.id))[-2:]
    services.hub.publish([higher])  # the later commit's event arrives first...
    await asyncio.sleep(0.2)
    services.hub.publish([lower])  # ...and the earlier one after it
    await _record(task.id, None, "error")
    services.hub.publish([(await services.tasks.history(task.id))[-1]])
    await asyncio.wait_for(following, 10)
    history = await services.tasks.history(task.id)
    # Each once, in cursor order: the late one was not skipped, nor sent twice.
    assert [e.cursor for e in followed] == [e.cursor for e in history]
    assert lower.cursor in [e.cursor for e in followed]


@pytest.mark.skipif(BACKEND != "postgres", reason="the PostgreSQL store and row locks")
async def test_a_completion_draws_its_cursor_under_the_task_lock(services, database_url):
    """Otherwise two sibling completions can commit in the opposite order of their cursors."""
    async with completion_waiting_for_task_lock(services, database_url) as held:
        drawn = await held.conn.fetchval(
            "SELECT nextval(pg_get_serial_sequence('tasker_transitions', 'id'))"
        )
        await held.lock.rollback()
        (done,) = await asyncio.wait_for(held.completing, 10)
    assert done.result == "complete"
    cursor = await Transition.filter(step_id=held.step_id, to_status="complete").first()
    assert cursor is not None
    assert cursor.id > drawn
