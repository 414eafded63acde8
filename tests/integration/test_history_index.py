"""Issue 7: deleting a step's history is an index lookup, not a scan of all history.

`tasker prune` deletes tasks; their steps go by ON DELETE CASCADE and each step's history rows
by the `tasker_transitions.step_id` foreign key. Without an index on that column every deleted
step scanned the whole history table: one batch of 1000 tasks took minutes on a database of
1.5 million history rows (bench/million.py). Migration 3 adds the index.
"""

from datetime import timedelta
from uuid import UUID

from tortoise import Tortoise

from server.container import Services
from server.db.models import Task, Transition, WorkflowStep
from server.domain.views import CreateTask
from server.services.retention import prune_finished


async def test_history_rows_of_a_step_are_found_through_an_index(services: Services) -> None:
    conn = Tortoise.get_connection("default")
    sql = "DELETE FROM tasker_transitions WHERE step_id = 1"
    if conn.capabilities.dialect == "postgres":
        # Small tables are cheap to scan; forbid that so the plan shows what exists.
        async with conn._in_transaction() as tx:
            await tx.execute_script("SET LOCAL enable_seqscan = off")
            rows = await tx.execute_query_dict(f"EXPLAIN {sql}")
        plan = " ".join(str(v) for row in rows for v in row.values())
        assert "Seq Scan" not in plan, plan
        assert "step_id" in plan, plan
    else:
        rows = await conn.execute_query_dict(f"EXPLAIN QUERY PLAN {sql}")
        plan = " ".join(str(row.get("detail", "")) for row in rows)
        assert "USING" in plan and "INDEX" in plan.upper(), plan


async def _old_task(services: Services, status: str) -> UUID:
    """A diamond task marked `status` 40 days ago, with its steps and history."""
    task, _ = await services.tasks.create_task(
        CreateTask(namespace="shapes", name="diamond", context={})
    )
    old = services.changes.clock.now() - timedelta(days=40)
    await Task.filter(id=task.id).update(status=status, completed_at=old)
    return task.id


async def test_prune_deletes_tasks_with_their_history(services: Services) -> None:
    task_id = await _old_task(services, "complete")
    assert await Transition.filter(task_id=task_id).count() == 5
    assert await prune_finished(services.changes.clock, older_than=timedelta(days=30)) == 1
    assert await WorkflowStep.filter(task_id=task_id).count() == 0
    assert await Transition.filter(task_id=task_id).count() == 0
