"""Writers of one task lock its row before its steps' rows, so two of them never deadlock.

A completion used to lock its step, then its children, then the task; a cancel locks the task,
then writes the steps. Run together on PostgreSQL, each held the row the other wanted and one
failed with `deadlock detected` (seen under the schemathesis run: a worker's message failed).
"""

import asyncio

import pytest

from server.db.models import WorkflowStep
from tests.conftest import BACKEND
from tests.support.task_lock import completion_waiting_for_task_lock

pytestmark = pytest.mark.skipif(BACKEND != "postgres", reason="PostgreSQL row locks")


async def test_a_completion_waits_for_the_task_lock_before_it_locks_its_step(
    services, database_url
):
    async with completion_waiting_for_task_lock(services, database_url) as held:
        # What a cancel does: the task row (held), then its open steps, in one transaction.
        # The completion waits holding no step row; had it locked its step first, this UPDATE
        # would wait on that lock, which waits on ours: a deadlock (PostgreSQL detects it
        # after deadlock_timeout, 1 s, and fails one side).
        await asyncio.wait_for(
            held.conn.execute(
                "UPDATE tasker_workflow_steps SET status = 'cancelled', lease_owner = NULL"
                " WHERE task_id = $1 AND status IN ('pending', 'in_progress')",
                held.task_id,
            ),
            timeout=5,
        )
        await held.lock.commit()
        (recorded,) = await asyncio.wait_for(held.completing, timeout=5)
    # The cancel won: the late result is discarded, not written over the cancelled step.
    assert recorded.result == "discarded"
    step = await WorkflowStep.get(id=held.step_id)
    assert step.status == "cancelled"
    assert step.results is None
