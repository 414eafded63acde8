"""Readiness counters: parents a step still waits on, steps a task still needs.

Decrementing them atomically lets a completion find newly ready children and the final step
without locking the task row (see server/db/fastpath.py). Existing rows are backfilled.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

_BACKFILL = """
UPDATE "tasker_workflow_steps" SET "waiting_on" = (
    SELECT COUNT(*) FROM "tasker_step_edges" e
      JOIN "tasker_workflow_steps" p ON p."id" = e."from_step_id"
     WHERE e."to_step_id" = "tasker_workflow_steps"."id"
       AND p."status" NOT IN ('complete', 'resolved_manually'));
UPDATE "tasker_tasks" SET "remaining" = (
    SELECT COUNT(*) FROM "tasker_workflow_steps" s
     WHERE s."task_id" = "tasker_tasks"."id"
       AND s."status" NOT IN ('complete', 'resolved_manually'));
"""


async def upgrade(db: BaseDBAsyncClient) -> str:
    return (
        """
        ALTER TABLE "tasker_workflow_steps" ADD "waiting_on" INT NOT NULL DEFAULT 0;
        ALTER TABLE "tasker_tasks" ADD "remaining" INT NOT NULL DEFAULT 0;
        """
        + _BACKFILL
    )


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
        ALTER TABLE "tasker_workflow_steps" DROP COLUMN "waiting_on";
        ALTER TABLE "tasker_tasks" DROP COLUMN "remaining";
        """
