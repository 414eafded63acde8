"""Idempotency keys belong to a caller: unique per (idempotency_scope, idempotency_key).

With authentication on, two callers sending the same key must get two tasks, and neither may
see the other's task through the key. `idempotency_scope` is a digest of the caller's token
subject (fixed width, whatever the subject); it is '' in open mode and for every existing
task, so keys sent without a token keep one global scope, as before.

The old unique constraint on the key alone goes. On PostgreSQL the new index is built
CONCURRENTLY before the old constraint is dropped, so running servers keep inserting and
duplicates stay refused throughout; that needs the migration outside a transaction and one
statement per call. If a concurrent build is interrupted it leaves an invalid index: drop it
and run `tasker migrate` again.

SQLite cannot drop a column-level UNIQUE: the old column is renamed
`legacy_idempotency_key`, emptied (its keys move to a new `idempotency_key` column) and left
unused, always NULL.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = False

INDEX = "uid_tasker_task_idempotency_scope"
OLD_CONSTRAINT = "tasker_tasks_idempotency_key_key"
ADD_SCOPE = (
    'ALTER TABLE "tasker_tasks" ADD COLUMN "idempotency_scope" VARCHAR(64) NOT NULL DEFAULT \'\';'
)


def _index(concurrently: str) -> str:
    # Partial: tasks without a key (most of them) need no entry.
    return (
        f'CREATE UNIQUE INDEX {concurrently}IF NOT EXISTS "{INDEX}" '
        'ON "tasker_tasks" ("idempotency_scope", "idempotency_key") '
        'WHERE "idempotency_key" IS NOT NULL;'
    )


async def upgrade(db: BaseDBAsyncClient) -> str:
    if db.capabilities.dialect == "postgres":
        await db.execute_script(ADD_SCOPE.replace("ADD COLUMN", "ADD COLUMN IF NOT EXISTS"))
        await db.execute_script(_index("CONCURRENTLY "))
        return f'ALTER TABLE "tasker_tasks" DROP CONSTRAINT IF EXISTS "{OLD_CONSTRAINT}";'
    await db.execute_script(
        'ALTER TABLE "tasker_tasks" RENAME COLUMN "idempotency_key" TO "legacy_idempotency_key";'
    )
    await db.execute_script('ALTER TABLE "tasker_tasks" ADD COLUMN "idempotency_key" VARCHAR(255);')
    await db.execute_script(
        'UPDATE "tasker_tasks" SET "idempotency_key" = "legacy_idempotency_key", '
        '"legacy_idempotency_key" = NULL WHERE "legacy_idempotency_key" IS NOT NULL;'
    )
    await db.execute_script(ADD_SCOPE)
    return _index("")


async def downgrade(db: BaseDBAsyncClient) -> str:
    # Fails if two callers used the same key meanwhile: the old schema cannot hold both.
    if db.capabilities.dialect == "postgres":
        await db.execute_script(
            f'ALTER TABLE "tasker_tasks" ADD CONSTRAINT "{OLD_CONSTRAINT}" '
            'UNIQUE ("idempotency_key");'
        )
        await db.execute_script(f'DROP INDEX IF EXISTS "{INDEX}";')
        return 'ALTER TABLE "tasker_tasks" DROP COLUMN IF EXISTS "idempotency_scope";'
    await db.execute_script(f'DROP INDEX IF EXISTS "{INDEX}";')
    await db.execute_script('ALTER TABLE "tasker_tasks" DROP COLUMN "idempotency_scope";')
    await db.execute_script(
        'UPDATE "tasker_tasks" SET "legacy_idempotency_key" = "idempotency_key" '
        'WHERE "idempotency_key" IS NOT NULL;'
    )
    await db.execute_script('ALTER TABLE "tasker_tasks" DROP COLUMN "idempotency_key";')
    return 'ALTER TABLE "tasker_tasks" RENAME COLUMN "legacy_idempotency_key" TO "idempotency_key";'
