"""Flow control: task priority, a step's resolved limits, and the limit bookkeeping tables.

- `tasker_tasks.priority` (1 low .. 3 high, default 2): orders the hand-off of freed slots.
- `tasker_tasks.concurrency_key`: the key of its handler's concurrency limit (NULL: none), so
  that the cancel strategies find the other active tasks of a key by index.
- `tasker_workflow_steps.flow`: the limits that apply to the step, with their keys resolved
  from the task's context at creation (NULL: no limit; the common case costs nothing).
- `tasker_limit_slots`: one row per (limit scope, key, step) that holds a slot (`held`), was
  offered a freed one (`offered`) or waits for one (`waiting`). A held row counts only while
  its step is in progress under the same lease, so a slot is freed with its lease whatever
  moved the step (completion, failure, a reaped lease, a cancel); the sweeper deletes the
  rows that no longer count.
- `tasker_limit_starts`: the starts of rate-limited steps, per (scope, key), for the sliding
  window; rows older than the window are deleted as new starts are admitted.

New tables and nullable or defaulted columns: instant on PostgreSQL (no table rewrite).
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


def _sql(serial: str, stamp: str, json: str, uuid: str, if_not: str) -> str:
    return f"""
ALTER TABLE "tasker_tasks" ADD COLUMN {if_not}"priority" INT NOT NULL DEFAULT 2;
ALTER TABLE "tasker_tasks" ADD COLUMN {if_not}"concurrency_key" VARCHAR(255);
CREATE INDEX IF NOT EXISTS "idx_tasker_task_concurr_6a2f0d" ON "tasker_tasks" ("namespace", "name", "concurrency_key", "status");
ALTER TABLE "tasker_workflow_steps" ADD COLUMN {if_not}"flow" {json};
CREATE TABLE IF NOT EXISTS "tasker_limit_slots" (
    "id" {serial},
    "scope" VARCHAR(400) NOT NULL,
    "key" VARCHAR(255) NOT NULL,
    "step_id" BIGINT NOT NULL,
    "task_id" {uuid} NOT NULL,
    "state" VARCHAR(16) NOT NULL,
    "lease_owner" VARCHAR(128),
    "limit" INT NOT NULL,
    "priority" INT NOT NULL DEFAULT 2,
    "created_at" {stamp} NOT NULL
);
CREATE INDEX IF NOT EXISTS "idx_tasker_limi_scope_k_f3e1a2" ON "tasker_limit_slots" ("scope", "key", "state");
CREATE INDEX IF NOT EXISTS "idx_tasker_limi_step_id_9b7c51" ON "tasker_limit_slots" ("step_id");
CREATE TABLE IF NOT EXISTS "tasker_limit_starts" (
    "id" {serial},
    "scope" VARCHAR(400) NOT NULL,
    "key" VARCHAR(255) NOT NULL,
    "step_id" BIGINT NOT NULL,
    "started_at" {stamp} NOT NULL
);
CREATE INDEX IF NOT EXISTS "idx_tasker_limi_scope_k_5d0c8e" ON "tasker_limit_starts" ("scope", "key", "started_at");
"""


async def upgrade(db: BaseDBAsyncClient) -> str:
    if db.capabilities.dialect == "postgres":
        return _sql("BIGSERIAL NOT NULL PRIMARY KEY", "TIMESTAMPTZ", "JSONB", "UUID", "IF NOT EXISTS ")
    return _sql("INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL", "TIMESTAMP", "JSON", "CHAR(36)", "")


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
DROP TABLE IF EXISTS "tasker_limit_starts";
DROP TABLE IF EXISTS "tasker_limit_slots";
ALTER TABLE "tasker_workflow_steps" DROP COLUMN "flow";
DROP INDEX IF EXISTS "idx_tasker_task_concurr_6a2f0d";
ALTER TABLE "tasker_tasks" DROP COLUMN "concurrency_key";
ALTER TABLE "tasker_tasks" DROP COLUMN "priority";
"""
