"""A task's start time: `tasker_tasks.run_at`, NULL for a task that may start at once.

A task created with `run_at` or `delay_seconds` stays pending until then: both step stores
refuse to claim its steps before `run_at`. No index: nothing looks tasks up by it. Its root
steps are dispatched by a delayed message and stamped `dispatched_at = run_at`, so the
sweeper's existing (status, dispatched_at) index already finds a delayed task whose message
was lost once it is due, and never before.

Adding a nullable column without a default is instant on PostgreSQL (no table rewrite).
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    if db.capabilities.dialect == "postgres":
        return 'ALTER TABLE "tasker_tasks" ADD COLUMN IF NOT EXISTS "run_at" TIMESTAMPTZ;'
    return 'ALTER TABLE "tasker_tasks" ADD COLUMN "run_at" TIMESTAMP;'


async def downgrade(db: BaseDBAsyncClient) -> str:
    return 'ALTER TABLE "tasker_tasks" DROP COLUMN "run_at";'
