"""Order the (namespace, status) index like the task lists: (namespace, status, created_at, id).

Issue 7's million-task run measured the GraphQL tasks connection filtered by namespace and
status at 2.2 x the same page on an empty database: the lists order by `created_at DESC, id
DESC`, the old index stopped at `created_at`, so PostgreSQL added an incremental sort by `id`
on every page. With `id` in the index the page is read in order and stops after `first` rows.

On PostgreSQL both steps run CONCURRENTLY (build the new index, then drop the old one), so
the upgrade never blocks the task inserts and status changes of running servers and workers;
that needs the migration outside a transaction and one statement per call. If a concurrent
build is interrupted it leaves an invalid index: drop it and run `tasker migrate` again.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = False

NEW = "idx_tasker_task_namespa_970769"
OLD = "idx_tasker_task_namespa_0009ff"


def _concurrently(db: BaseDBAsyncClient) -> str:
    return "CONCURRENTLY " if db.capabilities.dialect == "postgres" else ""


async def upgrade(db: BaseDBAsyncClient) -> str:
    await db.execute_script(
        f'CREATE INDEX {_concurrently(db)}IF NOT EXISTS "{NEW}" '
        'ON "tasker_tasks" ("namespace", "status", "created_at", "id");'
    )
    return f'DROP INDEX {_concurrently(db)}IF EXISTS "{OLD}";'


async def downgrade(db: BaseDBAsyncClient) -> str:
    await db.execute_script(
        f'CREATE INDEX IF NOT EXISTS "{OLD}" '
        'ON "tasker_tasks" ("namespace", "status", "created_at");'
    )
    return f'DROP INDEX IF EXISTS "{NEW}";'
