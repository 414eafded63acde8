"""Index the history by step: `tasker_transitions` (step_id).

Issue 7 found `tasker prune` taking minutes per batch of 1000 tasks on a database with 1.5
million history rows (and the batch's transaction holding its locks all that time): deleting a
step cascades to its history rows through the `step_id` foreign key, and with no index on that
column every deleted step cost a sequential scan of the whole history table. Reading one
step's history (GraphQL `Step.transitions`) did the same.

On PostgreSQL the index is built CONCURRENTLY, so applying this migration while the servers
and workers run never blocks the history inserts every state change makes; that needs the
migration to run outside a transaction, and the script to be one statement. If a concurrent
build is interrupted it leaves an invalid index: drop it and run `tasker migrate` again.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = False


async def upgrade(db: BaseDBAsyncClient) -> str:
    concurrently = "CONCURRENTLY " if db.capabilities.dialect == "postgres" else ""
    return (
        f'CREATE INDEX {concurrently}IF NOT EXISTS "idx_tasker_tran_step_id_5c1a2e" '
        'ON "tasker_transitions" ("step_id");'
    )


async def downgrade(db: BaseDBAsyncClient) -> str:
    return 'DROP INDEX IF EXISTS "idx_tasker_tran_step_id_5c1a2e";'
