"""Skipped steps and forked tasks.

`tasker_workflow_steps.skipped`: true for a step that ended `complete` without its handler
being called (its `run_if` condition was false). `tasker_tasks.forked_from`: the task a re-run
was forked from (NULL for a task created directly); no foreign key, so that deleting an old
task by retention never touches its forks, and no index: nothing looks tasks up by it.

Adding a column with a constant default (or nullable) is instant on PostgreSQL 11+.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    if db.capabilities.dialect == "postgres":
        return (
            'ALTER TABLE "tasker_workflow_steps" ADD COLUMN IF NOT EXISTS "skipped" BOOL'
            " NOT NULL DEFAULT FALSE;"
            ' ALTER TABLE "tasker_tasks" ADD COLUMN IF NOT EXISTS "forked_from" UUID;'
        )
    return (
        'ALTER TABLE "tasker_workflow_steps" ADD COLUMN "skipped" INT NOT NULL DEFAULT 0;'
        ' ALTER TABLE "tasker_tasks" ADD COLUMN "forked_from" CHAR(36);'
    )


async def downgrade(db: BaseDBAsyncClient) -> str:
    return (
        'ALTER TABLE "tasker_workflow_steps" DROP COLUMN "skipped";'
        ' ALTER TABLE "tasker_tasks" DROP COLUMN "forked_from";'
    )
