"""Index the steps that failed for good by creation time: `tasker_workflow_steps` (created_at)
WHERE status = 'error' AND next_attempt_at IS NULL.

The bottlenecks report counts the steps of recent tasks that exhausted their retries. With
only the (status, …) indexes, PostgreSQL read EVERY such step ever recorded and filtered them
by `created_at`: 22 ms at a million tasks (10,000 failed steps over 30 days, 300 of them in
the window), and growing with history, not with the window (issue 7's cold analytics). This
partial index holds only those steps, so the count is a short range of it. Tortoise cannot
declare a partial index with these conditions, so it lives here only (like migration 2's).

Built CONCURRENTLY on PostgreSQL so that running servers and workers are not blocked (hence
outside a transaction, one statement).
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = False


async def upgrade(db: BaseDBAsyncClient) -> str:
    concurrently = "CONCURRENTLY " if db.capabilities.dialect == "postgres" else ""
    return (
        f'CREATE INDEX {concurrently}IF NOT EXISTS "idx_tasker_work_exhausted" '
        'ON "tasker_workflow_steps" ("created_at") '
        "WHERE \"status\" = 'error' AND \"next_attempt_at\" IS NULL;"
    )


async def downgrade(db: BaseDBAsyncClient) -> str:
    return 'DROP INDEX IF EXISTS "idx_tasker_work_exhausted";'
