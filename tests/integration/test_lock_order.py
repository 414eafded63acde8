"""Writers of one task lock its row before its steps' rows, so two of them never deadlock.

A completion used to lock its step, then its children, then the task; a cancel locks the task,
then writes the steps. Run together on PostgreSQL, each held the row the other wanted and one
failed with `deadlock detected` (seen under the schemathesis run: a worker's message failed).
"""

import asyncio

import pytest

from server.db.models import WorkflowStep
from server.domain.views import CreateTask
from server.engine.pg_store import PgStore
from server.engine.runner import Claimer
from server.engine.store import Outcome
from tests.conftest import BACKEND

pytestmark = pytest.mark.skipif(BACKEND != "postgres", reason="PostgreSQL row locks")


async def test_a_completion_waits_for_the_task_lock_before_it_locks_its_step(
    services, database_url
):
    import asyncpg

    task, _ = await services.tasks.create_task(
        CreateTask(namespace="shapes", name="linear", context={})
    )
    first = await WorkflowStep.filter(task_id=task.id, waiting_on=0).first()
    assert first is not None
    store = services.store
    assert isinstance(store, PgStore)
    claimer = Claimer(store, worker_id="w", default_timeout=30.0, lease_grace=5.0)
    claim = await claimer.claim(first.id)
    assert claim is not None
    canceller = await asyncpg.connect(database_url)
    try:
        # What a cancel does: the task row, then its open steps, in one transaction.
        cancel = canceller.transaction()
        await cancel.start()
        await canceller.execute("SELECT 1 FROM tasker_tasks WHERE id = $1 FOR UPDATE", task.id)
        completing = asyncio.create_task(store.complete([(claim, Outcome(encoded="{}"))]))
        await asyncio.sleep(0.3)  # the completion is now waiting, holding no step row
        assert not completing.done()
        # Would wait on the completion's step lock, which waits on ours: a deadlock (PostgreSQL
        # detects it after deadlock_timeout, 1 s, and fails one side).
        await asyncio.wait_for(
            canceller.execute(
                "UPDATE tasker_workflow_steps SET status = 'cancelled', lease_owner = NULL"
                " WHERE task_id = $1 AND status IN ('pending', 'in_progress')",
                task.id,
            ),
            timeout=5,
        )
        await cancel.commit()
        (recorded,) = await asyncio.wait_for(completing, timeout=5)
    finally:
        await canceller.close()
    # The cancel won: the late result is discarded, not written over the cancelled step.
    assert recorded.result == "discarded"
    step = await WorkflowStep.get(id=first.id)
    assert step.status == "cancelled"
    assert step.results is None
