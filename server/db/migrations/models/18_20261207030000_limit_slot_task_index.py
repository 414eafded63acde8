"""Index a task's limit slots: `tasker_limit_slots` (task_id).

A completion frees its step's slots and, when it ends the task, the task's handler slot,
found by the task. Without this index PostgreSQL read every live slot row for it: every
held slot and every step waiting for one, on every limited completion, so a backlog queued
behind a key made each completion slower as the queue grew. Freeing a task's slots when it is
cancelled (`limits.release`) finds them the same way.

Built CONCURRENTLY on PostgreSQL so that running servers and workers are not blocked (hence
outside a transaction, one statement).
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = False


async def upgrade(db: BaseDBAsyncClient) -> str:
    concurrently = "CONCURRENTLY " if db.capabilities.dialect == "postgres" else ""
    return (
        f'CREATE INDEX {concurrently}IF NOT EXISTS "idx_tasker_limi_task_id" '
        'ON "tasker_limit_slots" ("task_id");'
    )


async def downgrade(db: BaseDBAsyncClient) -> str:
    return 'DROP INDEX IF EXISTS "idx_tasker_limi_task_id";'
