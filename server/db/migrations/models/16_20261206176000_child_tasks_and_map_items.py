"""Child tasks and map items.

`tasker_tasks.parent_task_id` / `parent_step`: a task started by a step of another task (a
`task:` step or `step.start_task`). The unique index on the pair is what makes starting a child
idempotent: a step that runs again finds the child it started instead of making a second one.
Both NULL for a top-level task (a unique index ignores rows with NULLs).

`tasker_step_items`: one row per item of a `map_over` step, claimed by compare-and-set with a
lease like a step; (step_id, idx) is unique so that expanding a map twice makes no extra items.
`dispatched_at` tells an item already sent to a worker from one still waiting for a slot.
(step_id, status, dispatched_at, idx) serves the per-step counts and the next-item pick in
index order without reading a long map's other items; (status, lease_expires_at) and
(status, dispatched_at) serve the sweeper's reaping and re-sending.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

_PG = """
ALTER TABLE "tasker_tasks" ADD COLUMN IF NOT EXISTS "parent_task_id" UUID;
ALTER TABLE "tasker_tasks" ADD COLUMN IF NOT EXISTS "parent_step" VARCHAR(128);
CREATE UNIQUE INDEX IF NOT EXISTS "uid_tasker_task_parent_step"
    ON "tasker_tasks" ("parent_task_id", "parent_step");
CREATE TABLE IF NOT EXISTS "tasker_step_items" (
    "id" BIGSERIAL NOT NULL PRIMARY KEY,
    "step_id" BIGINT NOT NULL REFERENCES "tasker_workflow_steps" ("id") ON DELETE CASCADE,
    "idx" INT NOT NULL,
    "status" VARCHAR(32) NOT NULL DEFAULT 'pending',
    "attempts" INT NOT NULL DEFAULT 0,
    "item" JSONB,
    "results" JSONB,
    "last_error" TEXT,
    "error_class" VARCHAR(255),
    "next_attempt_at" TIMESTAMPTZ,
    "dispatched_at" TIMESTAMPTZ,
    "lease_owner" VARCHAR(128),
    "lease_expires_at" TIMESTAMPTZ,
    "started_at" TIMESTAMPTZ,
    "completed_at" TIMESTAMPTZ,
    "updated_at" TIMESTAMPTZ NOT NULL,
    CONSTRAINT "uid_tasker_step_item_step_idx" UNIQUE ("step_id", "idx")
);
CREATE INDEX IF NOT EXISTS "idx_tasker_step_item_pick"
    ON "tasker_step_items" ("step_id", "status", "dispatched_at", "idx");
CREATE INDEX IF NOT EXISTS "idx_tasker_step_item_lease"
    ON "tasker_step_items" ("status", "lease_expires_at");
CREATE INDEX IF NOT EXISTS "idx_tasker_step_item_sent"
    ON "tasker_step_items" ("status", "dispatched_at");
"""

_SQLITE = """
ALTER TABLE "tasker_tasks" ADD COLUMN "parent_task_id" CHAR(36);
ALTER TABLE "tasker_tasks" ADD COLUMN "parent_step" VARCHAR(128);
CREATE UNIQUE INDEX IF NOT EXISTS "uid_tasker_task_parent_step"
    ON "tasker_tasks" ("parent_task_id", "parent_step");
CREATE TABLE IF NOT EXISTS "tasker_step_items" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "step_id" BIGINT NOT NULL REFERENCES "tasker_workflow_steps" ("id") ON DELETE CASCADE,
    "idx" INT NOT NULL,
    "status" VARCHAR(32) NOT NULL DEFAULT 'pending',
    "attempts" INT NOT NULL DEFAULT 0,
    "item" JSON,
    "results" JSON,
    "last_error" TEXT,
    "error_class" VARCHAR(255),
    "next_attempt_at" TIMESTAMP,
    "dispatched_at" TIMESTAMP,
    "lease_owner" VARCHAR(128),
    "lease_expires_at" TIMESTAMP,
    "started_at" TIMESTAMP,
    "completed_at" TIMESTAMP,
    "updated_at" TIMESTAMP NOT NULL,
    CONSTRAINT "uid_tasker_step_item_step_idx" UNIQUE ("step_id", "idx")
);
CREATE INDEX IF NOT EXISTS "idx_tasker_step_item_pick"
    ON "tasker_step_items" ("step_id", "status", "dispatched_at", "idx");
CREATE INDEX IF NOT EXISTS "idx_tasker_step_item_lease"
    ON "tasker_step_items" ("status", "lease_expires_at");
CREATE INDEX IF NOT EXISTS "idx_tasker_step_item_sent"
    ON "tasker_step_items" ("status", "dispatched_at");
"""


async def upgrade(db: BaseDBAsyncClient) -> str:
    return _PG if db.capabilities.dialect == "postgres" else _SQLITE


async def downgrade(db: BaseDBAsyncClient) -> str:
    return (
        'DROP TABLE IF EXISTS "tasker_step_items"; DROP INDEX IF EXISTS "uid_tasker_task_parent_step";'
        ' ALTER TABLE "tasker_tasks" DROP COLUMN "parent_step";'
        ' ALTER TABLE "tasker_tasks" DROP COLUMN "parent_task_id";'
    )
