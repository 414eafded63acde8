"""Pause and resume (a task, a handler) and debounced creation.

- `tasker_tasks.paused_at`: the task was paused by hand (NULL: not paused).
- `tasker_tasks.handler_paused_at`: its handler was paused. A flag on the task row rather than
  a join in the claim: both step stores lock the task row when they claim, so a claim waiting
  on that lock re-reads the flag that the handler pause wrote, and no step starts once the
  pause has committed.
- `tasker_paused_handlers`: the paused handlers themselves (version '' = every version), read
  when a task is created so that a task of a paused handler is created paused.
- `tasker_tasks.debounce_key`: the resolved debounce key of a debounced task while its window
  is open. A partial unique index over (namespace, name, debounce_key) of pending tasks makes
  concurrent creations with one key collapse into one task: the losers of the insert race
  join the winner.

Nullable columns without defaults are instant on PostgreSQL (no table rewrite).
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

DEBOUNCE_INDEX = "uid_tasker_task_debounce"


def _statements(timestamp: str, serial: str) -> list[str]:
    return [
        f'ALTER TABLE "tasker_tasks" ADD COLUMN "paused_at" {timestamp};',
        f'ALTER TABLE "tasker_tasks" ADD COLUMN "handler_paused_at" {timestamp};',
        'ALTER TABLE "tasker_tasks" ADD COLUMN "debounce_key" VARCHAR(255);',
        f'CREATE UNIQUE INDEX "{DEBOUNCE_INDEX}" ON "tasker_tasks" '
        '("namespace", "name", "debounce_key") '
        "WHERE \"debounce_key\" IS NOT NULL AND \"status\" = 'pending';",
        'CREATE TABLE "tasker_paused_handlers" ('
        f'"id" {serial}, '
        '"namespace" VARCHAR(128) NOT NULL, '
        '"name" VARCHAR(128) NOT NULL, '
        '"version" VARCHAR(64) NOT NULL DEFAULT \'\', '
        f'"paused_at" {timestamp} NOT NULL, '
        'CONSTRAINT "uid_tasker_paus_namespa_handler" UNIQUE ("namespace", "name", "version"));',
    ]


async def upgrade(db: BaseDBAsyncClient) -> str:
    if db.capabilities.dialect == "postgres":
        statements = _statements("TIMESTAMPTZ", "SERIAL NOT NULL PRIMARY KEY")
    else:
        statements = _statements("TIMESTAMP", "INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL")
    return "\n".join(statements)


async def downgrade(db: BaseDBAsyncClient) -> str:
    return "\n".join(
        [
            'DROP TABLE IF EXISTS "tasker_paused_handlers";',
            f'DROP INDEX IF EXISTS "{DEBOUNCE_INDEX}";',
            'ALTER TABLE "tasker_tasks" DROP COLUMN "debounce_key";',
            'ALTER TABLE "tasker_tasks" DROP COLUMN "handler_paused_at";',
            'ALTER TABLE "tasker_tasks" DROP COLUMN "paused_at";',
        ]
    )
